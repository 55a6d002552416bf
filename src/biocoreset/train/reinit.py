"""Re-initialising a model's weights, reproducibly: the start of pretraining from scratch.

Example:
    >>> from biocoreset.testing import tiny_esm
    >>> model, _ = tiny_esm()
    >>> reinitialise(model, 0) is model
    True
"""

from __future__ import annotations

import copy

import torch

from biocoreset.errors import ConfigError

__all__ = ["reinitialise"]


def reinitialise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Re-initialise ``model``'s weights in place, reproducibly from ``seed``; return it.

    A Hugging Face ``PreTrainedModel`` is rebuilt from its config (its own initialisation recipe) and
    the fresh weights are copied in; any other module has ``reset_parameters()`` called on every
    submodule that defines it. The global torch RNG is left untouched.

    Raises:
        ConfigError: The model has parameters no ``reset_parameters()`` reaches.
    """
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        config = getattr(model, "config", None)
        if config is not None and hasattr(model, "post_init"):
            fresh = type(model)(copy.deepcopy(config)).to(dtype)
            missing, unexpected = model.load_state_dict(fresh.state_dict(), strict=False)
            if unexpected or [k for k in missing if not k.endswith(("position_ids", "inv_freq"))]:
                raise ConfigError(
                    f"could not re-initialise {type(model).__name__} from its config: missing "
                    f"{missing[:3]}, unexpected {unexpected[:3]}."
                )
            return model
        reached: set[int] = set()
        for module in model.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
                reached.update(id(p) for p in module.parameters(recurse=False))
        left = [n for n, p in model.named_parameters() if id(p) not in reached]
        if left:
            raise ConfigError(
                f"cannot re-initialise {type(model).__name__}: parameters {left[:3]} belong to modules "
                "without reset_parameters(). Re-initialise the model yourself and pass reinit=False."
            )
    return model
