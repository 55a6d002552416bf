"""Checks of a ``biocoreset run`` configuration that need no compute: every component name, option
and path, so that a typo fails in a second, before fine-tuning, and before the run folder is
claimed (no ``run.json`` is written for a configuration that fails them).

Example:
    >>> from biocoreset.run.file import run_config_from_dict
    >>> cfg = run_config_from_dict({"output": "r", "data": {"path": "missing.fa"}})
    >>> check_run_config(cfg)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    biocoreset.errors.InputError: data.path '...missing.fa' does not exist; fix [data] path in the run file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biocoreset.errors import ConfigError, InputError
from biocoreset.run.file import RunConfig

__all__ = ["check_run_config", "selector_options"]


def _exists(key: str, path: str | None, table: str) -> None:
    if path is not None and not Path(path).exists():
        raise InputError(
            f"{key} {str(path)!r} does not exist; fix [{table}] {key.split('.')[-1]} in the run file."
        )


def check_run_config(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Check paths, component names and options of a run; return each method's selector options.

    Checked: ``data.path``, ``model.path`` and ``model.weights`` exist; ``model.device`` exists
    on this machine; the adapter, scorer, curvature and every selector are registered and accept
    their options (the adapter's where its factory declares them; weights are not read).

    Raises:
        InputError: A path that does not exist (names the key).
        ConfigError: An unknown component or option (with a did-you-mean), or an unusable device.
    """
    from biocoreset.config import damping_options
    from biocoreset.modelio.device import resolve_device
    from biocoreset.plugins import get_registry

    _exists("data.path", cfg.data.path, "data")
    _exists("model.path", cfg.model.path, "model")
    _exists("model.weights", cfg.model.weights, "model")
    selections = selector_options(cfg)
    registry = get_registry()
    score = cfg.score
    scorer = registry.get("scorer", score.scorer).factory()
    if scorer.needs_curvature:
        registry.get("curvature", score.curvature).factory(
            **damping_options(score.damping), **score.curvature_options
        )
    _check_adapter(cfg)
    resolve_device(cfg.model.device)
    return selections


def _check_adapter(cfg: RunConfig) -> None:
    """The adapter's name, and its options where its factory declares them (nothing is loaded)."""
    from biocoreset.plugins import get_registry
    from biocoreset.plugins.options import check_options

    name = cfg.model.adapter
    component = get_registry().get("adapter", name)
    options = list(cfg.model.options)
    if not options:
        return
    if cfg.model.path is not None:  # loaded by the adapter class's from_path
        from biocoreset.modelio.load import check_load_options

        check_load_options(component, options)
    else:  # built by the factory, which checks them itself when it takes any keyword
        check_options(component.load(), options, kind="adapter", name=name)


def selector_options(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Each method's selector options: the preset's for that selector, then the run file's
    ``[select.options.<method>]``. Every selector is built once with them, so a bad option or
    method fails before any work (the selector checks its own options).

    Raises:
        ConfigError: An option the selector rejects (or an unknown method).
    """
    from biocoreset.config.presets import get_preset
    from biocoreset.plugins import get_registry

    preset = get_preset(cfg.preset)
    out = {}
    for method in cfg.select.methods:
        options = {**preset.options_for(method), **cfg.select.options_for(method)}
        factory = get_registry().get("selector", method).factory
        try:
            factory(**options)
        except TypeError as exc:  # a selector without option checking of its own
            raise ConfigError(f"[select.options.{method}] {exc}") from None
        out[method] = options
    return out
