"""Device resolution: the one place that turns ``"auto"``, ``"cpu"``, ``"cuda:1"``... into a device.

Example:
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import torch

from biocoreset.errors import ConfigError
from biocoreset.runtime.distributed import DistContext, current

__all__ = ["resolve_device"]


def resolve_device(
    spec: str | torch.device = "auto", *, ctx: DistContext | None = None
) -> torch.device:
    """The torch device ``spec`` names.

    Args:
        spec: ``"auto"``: this rank's GPU when CUDA is available (``cuda:<local rank>``, wrapped
            around the visible devices), else the CPU; or any torch device string.
        ctx: The distributed context (default: :func:`biocoreset.runtime.current`).

    Raises:
        ConfigError: ``spec`` is not a device.
    """
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        if torch.cuda.is_available():
            local = (ctx or current()).local_rank
            return torch.device("cuda", local % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device {spec!r} is not a torch device ('auto', 'cpu', 'cuda:0', ...)."
        ) from exc
    _check_available(device, spec)
    return device


def _check_available(device: torch.device, spec: str) -> None:
    """Refuse a device this machine does not have (before a model is moved onto it)."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {spec!r}: CUDA is not available on this machine (torch "
                f"{torch.__version__}); use --device cpu (or 'auto')."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device {spec!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})."
            )
    elif device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device {spec!r}: MPS is not available on this machine; use cpu.")
