"""Saving a fitted curvature with the score work folder, so a resumed run does not refit.

Example:
    >>> class Tiny:
    ...     def __init__(self): self.scale = 2.0
    ...     def metadata(self): return {"scale": self.scale}
    >>> state = snapshot_curvature(Tiny())
    >>> fresh = Tiny(); fresh.scale = 0.0
    >>> restore_curvature(fresh, state), fresh.scale
    (True, 2.0)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import attrs

from biocoreset.protocols import SavableCurvature
from biocoreset.store.atomic import atomic_path
from biocoreset.store.disk import write_errors

__all__ = ["load_curvature", "restore_curvature", "save_curvature", "snapshot_curvature"]


def _plain(value: Any) -> bool:
    import torch

    if isinstance(value, torch.nn.Parameter):
        return False
    if isinstance(value, torch.Tensor):
        return not value.requires_grad
    if value is None or isinstance(value, (bool, int, float, str, torch.dtype)):
        return True
    if type(value) is dict:
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if type(value) in (list, tuple):
        return all(_plain(v) for v in value)
    return False


def _meta_text(curvature: Any) -> str:
    try:
        return json.dumps(curvature.metadata(), sort_keys=True, default=str)
    except Exception:
        return ""


def snapshot_curvature(curvature: Any) -> dict[str, Any] | None:
    """A ``torch.save``-able state of a fitted curvature, loadable with ``weights_only=True``.

    Uses the curvature's ``state_dict()`` when it has one (with ``load_state_dict``); otherwise its
    plain attributes (tensors that are not parameters, numbers, strings, dtypes, and dicts/lists of
    those). ``None`` when there is nothing to save.
    """
    if isinstance(curvature, SavableCurvature):
        return {
            "kind": "state_dict",
            "state": curvature.state_dict(),
            "metadata": _meta_text(curvature),
        }
    try:
        found = dict(vars(curvature))
    except TypeError:  # no __dict__ (a slotted class)
        found = {}
    if attrs.has(type(curvature)):  # a slotted attrs class has no vars()
        found = {**attrs.asdict(curvature, recurse=False), **found}
    attrs_ = {k: v for k, v in found.items() if _plain(v)}
    if not attrs_:
        return None
    return {"kind": "attributes", "state": attrs_, "metadata": _meta_text(curvature)}


def restore_curvature(curvature: Any, state: Mapping[str, Any]) -> bool:
    """Load a :func:`snapshot_curvature` state; ``True`` when the restored curvature reports the
    same metadata as the saved one (else the caller should refit)."""
    try:
        if state.get("kind") == "state_dict":
            curvature.load_state_dict(state["state"])
        elif state.get("kind") == "attributes":
            for k, v in state["state"].items():
                setattr(curvature, k, v)
        else:
            return False
    except Exception:
        return False
    return bool(state.get("metadata")) and _meta_text(curvature) == state["metadata"]


def save_curvature(path: str | os.PathLike[str], curvature: Any) -> bool:
    """Save a fitted curvature's :func:`snapshot_curvature` to ``path`` atomically; ``False`` if
    it has no state."""
    import torch

    state = snapshot_curvature(curvature)
    if state is None:
        return False
    with atomic_path(path, force=True, fsync=True) as tmp, write_errors(path):
        torch.save(state, tmp)  # a full disk: an OSError naming the file, no partial file left
    return True


def load_curvature(path: str | os.PathLike[str], curvature: Any, device: Any = "cpu") -> bool:
    """Restore a curvature saved by :func:`save_curvature` into ``curvature`` (after its
    ``fit_begin``); ``False`` if none was saved or it does not restore exactly (then refit)."""
    import torch

    if not os.path.exists(path):
        return False
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception:
        return False
    return restore_curvature(curvature, state)
