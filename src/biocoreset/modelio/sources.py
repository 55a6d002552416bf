"""Named model sources: ``--model NAME`` for trained weights that an installed package ships.

A name in :data:`MODEL_SOURCES` given where a model path is expected (``--model antiberty``,
``load_model("antiberty")``) resolves to the weights inside the installed package, loaded by the
``hf`` adapter with the right tokenizer. A path that exists always wins over a name.

* ``antiberty`` — AntiBERTy (Ruffolo et al. 2021; ``antiberty==0.1.3``, MIT): a BERT masked LM,
  8 layers × 512, 25.8M parameters, trained on 558M antibody sequences from OAS; 20 amino acids,
  at most 510 residues. Install with ``pip install 'biocoreset[antibody]'``.

Example:
    >>> "antiberty" in MODEL_SOURCES
    True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from biocoreset.errors import ConfigError

__all__ = ["MODEL_SOURCES", "ModelSource", "antiberty_files", "model_source"]


@attrs.frozen(kw_only=True)
class ModelSource:
    """A named model that an installed package ships.

    Attributes:
        name: What ``--model`` accepts.
        description: One line for docs and messages.
        files: ``() -> (model folder, vocab file)``; raises :class:`ConfigError` when the package
            is missing.
    """

    name: str
    description: str
    files: Callable[[], tuple[Path, Path]]

    def load(self, **options: Any) -> Any:
        """The ``hf`` adapter over this source's weights and a per-residue tokenizer."""
        from transformers.utils import logging as hf_logging

        from biocoreset.adapters.hf import HFAdapter
        from biocoreset.adapters.residue_tokenizer import residue_tokenizer

        folder, vocab = self.files()
        tokens = [t for t in vocab.read_text(encoding="utf-8").splitlines() if t.strip()]
        # The package's checkpoint also holds heads the masked LM does not use (AntiBERTy's
        # species, chain and graft heads): transformers' report of them is noise here.
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            return HFAdapter.from_path(folder, tokenizer=residue_tokenizer(tokens), **options)
        finally:
            hf_logging.set_verbosity(level)


def _package_dir(package: str, extra: str) -> Path:
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ConfigError(
            f"--model {package} needs the {package!r} package: pip install 'biocoreset[{extra}]'"
        ) from exc
    return Path(module.__file__ or "").parent


def antiberty_files() -> tuple[Path, Path]:
    """AntiBERTy's model folder and ``vocab.txt`` inside the installed ``antiberty`` package.

    Raises:
        ConfigError: ``antiberty`` is not installed, or its wheel lacks the weights.
    """
    root = _package_dir("antiberty", "antibody") / "trained_models"
    folder, vocab = root / "AntiBERTy_md_smooth", root / "vocab.txt"
    if not ((folder / "config.json").is_file() and vocab.is_file()):
        raise ConfigError(
            f"the installed antiberty package has no weights at {str(folder)!r}; reinstall it: "
            "pip install --force-reinstall 'antiberty==0.1.3'"
        )
    return folder, vocab


MODEL_SOURCES: dict[str, ModelSource] = {
    "antiberty": ModelSource(
        name="antiberty",
        description="AntiBERTy antibody masked LM (BERT, 25.8M parameters; biocoreset[antibody])",
        files=antiberty_files,
    ),
}
"""The named model sources."""


def model_source(path: Any) -> ModelSource | None:
    """The source ``path`` names, or ``None`` (not a name, or a path that exists).

    >>> model_source("antiberty").name, model_source("no/such/model")
    ('antiberty', None)
    """
    if not isinstance(path, str) or path not in MODEL_SOURCES or Path(path).exists():
        return None
    return MODEL_SOURCES[path]
