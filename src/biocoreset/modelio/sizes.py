"""Named model sizes of the adapters that have them, with computed parameter counts.

Example:
    >>> model_sizes("rna-fm")["small"]["layers"], model_sizes("hf")
    (4, {})
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_sizes"]


def model_sizes(adapter: str) -> dict[str, dict[str, Any]]:
    """``{size name: {"layers", "hidden", "heads", "params", ...}}`` for a registered adapter.

    The adapter class declares its sizes with its ``model_sizes()`` classmethod (``rna-fm``:
    ``tiny``, ``small``, ``base``, ``rna-fm``; ``esmc``: ``tiny``, ``small``, ``base``,
    ``esmc_300m``, ``esmc_600m``); adapters without named sizes (``hf``) give ``{}``. Parameter
    counts are computed by building each model on the meta device.

    Raises:
        ConfigError: Unknown adapter name.
        ImportError: The adapter's optional package is missing (``esmc`` needs ``esm``).
    """
    from biocoreset.plugins import get_registry

    return dict(get_registry().get("adapter", adapter).adapter_class().model_sizes())
