"""The optional capabilities of an adapter, with their defaults, and how the core reads them.

:class:`AdapterBase` declares every optional member of a
:class:`~biocoreset.protocols.ModelAdapter` once, with its default (as kronfluence's ``Task``);
:func:`capabilities` reads an adapter through them, whether or not it subclasses
:class:`AdapterBase`; :func:`adapter_class` gives the class capabilities (``factory``,
``from_path``, ``model_sizes``) of whatever a plugin registered. Their documented home is
:mod:`biocoreset.protocols`, which re-exports all three.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where it is used: `from biocoreset import select` skips it
    import torch

__all__ = ["AdapterBase", "adapter_class", "capabilities"]


class AdapterBase:
    """The optional capabilities of a :class:`~biocoreset.protocols.ModelAdapter`, with the defaults the core assumes.

    As kronfluence's ``Task``: an adapter that subclasses this class (every built-in one does,
    through :class:`~biocoreset.adapters.base.MaskedLMAdapter`) inherits a default for each
    capability and overrides what it offers. The core never probes an adapter for a member; it
    reads these names through :func:`capabilities`, which also gives an adapter that does not
    subclass this class (a third-party plugin) the same defaults.

    A method capability with a neutral behaviour has it as its body (``validate`` returns the
    sequence unchanged, ``embed`` runs the model for its hidden states), so the core calls it
    without asking whether it exists. One without (``encode``, ``probe_batch``) defaults to
    ``None``, Python's mark of a protocol
    member that is not supported (``isinstance(adapter, SupportsProbe)`` is then false); an
    adapter offers it by defining the method.

    The class capabilities are classmethods, read before any adapter exists (through
    :func:`adapter_class`): ``factory`` (what builds a registered adapter class), ``from_path``
    (loading a saved model) and ``model_sizes`` (the named sizes of ``size=``).
    Each member below is commented with what it means.
    """

    name: str | None = None  # the registered name (required by ModelAdapter)
    max_length: int | None = None  # residues, special tokens excluded (None: no limit)
    loss_mode: str = "masked"  # or "paper-compat" (docs/design.md)
    masking: Any = None  # the adapter's MaskingConfig (None: the run's ScoreConfig.masking)
    stats: Mapping[str, int] = MappingProxyType({})  # input hygiene counts, kept with the scores
    long_policy: str | None = None  # what a sequence over max_length gets (None: unknown)
    truncation: str = "keep-eos"  # how a long sequence is cut, or "first-tokens"
    alphabet: frozenset[str] | None = None  # accepted residue letters (None: no letter check)
    residue_alphabet: frozenset[str] | None = None  # the model's letters, checked or not
    replacement: str | None = None  # the letter validation puts for a rejected one
    mask_token_id: int | None = None  # these three token ids build the engine's probe batch
    pad_token_id: int | None = None
    random_token_ids: Sequence[int] = ()
    tokenizer: Any = None  # saved with trained models
    pad_to: int | None = None  # every row padded to this many tokens (None: the longest row)
    attend_to_padding: bool = False  # whether real tokens attend to padding
    composition_free: bool | None = None  # loss free of batch companions (None: derived)
    encode: Callable[[str, str], tuple[list[int], list[bool]]] | None = None  # SupportsEncode
    probe_batch: Callable[[], Any] | None = None  # a Batch of 5 rows (SupportsProbe)
    model: torch.nn.Module  # required by ModelAdapter; embed's default runs it

    @property
    def device(self) -> Any:
        """The device of the model (``"cpu"`` by default)."""
        return "cpu"

    def validate(self, record_id: str, sequence: str) -> str:
        """The sequence to check against the alphabet (:class:`~biocoreset.protocols.SupportsValidation`); by default
        the sequence unchanged."""
        return sequence

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``[B, T, H]`` final hidden states of the encoder (the downstream benchmarks' features).

        By default the Hugging Face base model's ``last_hidden_state`` (``model.base_model``),
        else ``model(..., output_hidden_states=True).hidden_states[-1]``; an adapter whose model
        has neither (ESM-C) overrides this.

        Raises:
            ConfigError: The model gives neither.
        """
        import torch

        from biocoreset.errors import ConfigError

        model = self.model
        base = getattr(model, "base_model", None)
        if isinstance(base, torch.nn.Module):
            out = base(input_ids=input_ids, attention_mask=attention_mask)
            hidden = getattr(out, "last_hidden_state", None)
            if hidden is not None:
                return hidden
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        states = getattr(out, "hidden_states", None)
        if not states:
            raise ConfigError(
                f"cannot get hidden states from {type(model).__name__}; give the adapter an "
                "embed(input_ids, attention_mask) -> [B, T, H] method."
            )
        return states[-1]

    # The class capabilities: what the registry needs before there is an adapter.

    @classmethod
    def factory(cls) -> Callable[..., Any]:
        """What the registry builds this adapter with when the class itself is registered (the
        user's options are checked against it); by default the class."""
        return cls

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], /, **options: Any) -> Any:
        """Build the adapter from a saved model (what ``--model PATH`` does).

        By default the factory receives ``checkpoint=PATH`` with the options (an adapter that
        loads files itself overrides this).
        """
        return cls.factory()(checkpoint=os.fspath(path), **options)

    @classmethod
    def model_sizes(cls) -> dict[str, dict[str, Any]]:
        """Named sizes (``{size: {"layers", "hidden", "heads", "params", ...}}``) for ``size=``;
        by default none."""
        return {}


class _AdapterView(AdapterBase):
    """An adapter that does not subclass :class:`AdapterBase`, seen with its defaults: every member
    is the adapter's own when it has one, else the default."""

    def __init__(self, adapter: Any) -> None:
        object.__setattr__(self, "_adapter", adapter)

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("__") or name == "_adapter":
            return object.__getattribute__(self, name)
        try:
            return getattr(object.__getattribute__(self, "_adapter"), name)
        except AttributeError:
            return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_adapter"), name, value)


def adapter_class(target: Any, factory: Callable[..., Any] | None = None) -> type[AdapterBase]:
    """The class that declares a registered adapter's class capabilities (``factory``,
    ``from_path``, ``model_sizes``): ``target`` itself when it subclasses :class:`AdapterBase`;
    for a plain factory function, a subclass of :class:`AdapterBase` built by it, with the
    defaults.

    Args:
        target: What a plugin registered: an adapter class, or a factory function.
        factory: What the class for a factory function builds with (default: ``target``; the
            registry passes ``target`` wrapped in its option check).

    A factory function that still carries ``from_path`` or ``model_sizes`` as attributes (the
    older plugin contract) keeps them, with a :class:`DeprecationWarning`.

    >>> def make_adapter(model=None, **options): ...
    >>> adapter_class(make_adapter).model_sizes()
    {}
    >>> adapter_class(AdapterBase) is AdapterBase
    True
    """
    if isinstance(target, type) and issubclass(target, AdapterBase):
        return target
    build = target if factory is None else factory
    members: dict[str, Any] = {"factory": classmethod(lambda cls: build)}
    try:
        legacy = {k: v for k, v in vars(target).items() if k in ("from_path", "model_sizes")}
    except TypeError:  # no __dict__: nothing attached
        legacy = {}
    if legacy:
        import warnings

        warnings.warn(
            f"adapter factory {target!r} carries {' and '.join(sorted(legacy))} as function "
            "attributes; register an adapter class (a subclass of biocoreset.protocols.AdapterBase, "
            "with factory, from_path and model_sizes classmethods) instead (docs/plugins.md).",
            DeprecationWarning,
            stacklevel=2,
        )
        members.update({k: staticmethod(v) for k, v in legacy.items()})
    return type("FactoryAdapter", (AdapterBase,), members)


def capabilities(adapter: Any) -> AdapterBase:
    """``adapter`` with every optional capability of :class:`AdapterBase`: the adapter itself when it
    subclasses it, else a view that reads the adapter's own member and falls back to the default
    (setting a member sets it on the adapter).

    >>> capabilities(object()).loss_mode
    'masked'
    >>> class Plugin: loss_mode = "paper-compat"
    >>> capabilities(Plugin()).loss_mode, capabilities(Plugin()).probe_batch is None
    ('paper-compat', True)
    """
    return adapter if isinstance(adapter, AdapterBase) else _AdapterView(adapter)
