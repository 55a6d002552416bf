"""Learning-rate schedules as multiplicative factors of the base learning rate: the one scheduler
module of fine-tuning and pretraining.

Every schedule is a small picklable callable ``factor(s)`` where ``s`` counts the optimizer steps
already taken (``s = 0`` for the first step), used through :class:`torch.optim.lr_scheduler.LambdaLR`
(:func:`make_lr_scheduler`). With ``t = s + 1`` (the 1-based number of the step being taken) and
``W = max(1, warmup_steps)``:

* ``"inverse-sqrt"`` (the paper's pretraining schedule, as in fairseq): ``t / W`` for ``t ≤ W``,
  then ``sqrt(W / t)``. Continuous at ``t = W`` (factor 1) and never 0, so no step is wasted.
* ``"constant"``: linear warm-up ``t / W``, then 1.
* ``"linear"``: linear warm-up, then linear decay to 0 at ``total_steps``: ``(T - s) / (T - W)``;
  a run no longer than its warm-up is an error.
* ``"cosine"``: linear warm-up, then half a cosine from 1 down to 0 at ``total_steps``:
  ``(1 + cos(π (s - W) / (T - W))) / 2`` for ``t > W`` (as ``"linear"``, never 0 within the run);
  a run no longer than its warm-up is an error.

Fine-tuning on ``D_sub`` (:class:`FinetuneSchedule`, :func:`lr_factor`) uses ``"linear"`` or
``"constant"`` with two differences suited to short runs: a run no longer than its warm-up is
warm-up only (not an error), and the linear decay divides by ``T - warmup_steps`` (so with no
warm-up it decays from the first step).

Example:
    >>> f = make_schedule("inverse-sqrt", warmup_steps=4)
    >>> [round(f(s), 4) for s in range(6)]
    [0.25, 0.5, 0.75, 1.0, 0.8944, 0.8165]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from biocoreset.errors import ConfigError

if TYPE_CHECKING:  # torch is imported when a scheduler is made, so the CLI starts fast
    import torch

__all__ = [
    "SCHEDULES",
    "Constant",
    "Cosine",
    "FinetuneSchedule",
    "InverseSqrt",
    "Linear",
    "lr_factor",
    "make_lr_scheduler",
    "make_schedule",
]


class _Schedule:
    """Base class: a picklable, state-dict friendly ``factor(step)`` (plain ``__dict__`` attributes)."""

    def __init__(self, warmup_steps: int, total_steps: int | None = None) -> None:
        if isinstance(warmup_steps, bool) or int(warmup_steps) != warmup_steps or warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}.")
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)

    @property
    def _w(self) -> int:
        return max(1, self.warmup_steps)

    def __call__(self, step: int) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(warmup_steps={self.warmup_steps}, total_steps={self.total_steps})"


class InverseSqrt(_Schedule):
    """Linear warm-up over ``warmup_steps`` then inverse-square-root decay (paper A.3/A.4)."""

    def __call__(self, step: int) -> float:
        t, w = step + 1, self._w
        return t / w if t <= w else math.sqrt(w / t)


class Constant(_Schedule):
    """Linear warm-up then a constant learning rate."""

    def __call__(self, step: int) -> float:
        t, w = step + 1, self._w
        return t / w if t <= w else 1.0


class Linear(_Schedule):
    """Linear warm-up then linear decay to 0 at ``total_steps``."""

    _name = "linear"

    def __init__(self, warmup_steps: int, total_steps: int | None = None) -> None:
        super().__init__(warmup_steps, total_steps)
        if self.total_steps is None or self.total_steps <= self._w:
            raise ConfigError(
                f"the {self._name!r} schedule needs total_steps > warmup_steps, got total_steps="
                f"{total_steps!r}, warmup_steps={warmup_steps!r}."
            )

    def __call__(self, step: int) -> float:
        t, w = step + 1, self._w
        assert self.total_steps is not None
        if t <= w:
            return t / w
        return max(0.0, (self.total_steps - step) / (self.total_steps - w))


class Cosine(Linear):
    """Linear warm-up then a half-cosine decay from 1 to 0 at ``total_steps``.

    Like ``"linear"``, the first step after the warm-up is at the peak and the last is above 0.

    >>> [round(Cosine(2, 6)(s), 3) for s in range(6)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146]
    """

    _name = "cosine"

    def __call__(self, step: int) -> float:
        t, w = step + 1, self._w
        assert self.total_steps is not None
        if t <= w:
            return t / w
        frac = min(1.0, (step - w) / (self.total_steps - w))
        return 0.5 * (1.0 + math.cos(math.pi * frac))


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, schedule: str = "linear") -> float:
    """Fine-tuning's multiplier of the base learning rate at 0-based optimizer step ``step``.

    Warm-up: ``(step+1)/W`` for the first ``W = warmup_steps`` steps; then ``"constant"`` stays at
    1 and ``"linear"`` decays to 0 at ``total_steps``: ``(T - step)/(T - W)``. When ``W >= T`` the
    whole run is warm-up.

    >>> [round(lr_factor(s, warmup_steps=2, total_steps=4), 2) for s in range(4)]
    [0.5, 1.0, 1.0, 0.5]
    """
    w = max(1, warmup_steps)
    t = step + 1
    if t <= w or warmup_steps >= total_steps:
        return min(1.0, t / w)
    if schedule == "constant":
        return 1.0
    return max(0.0, (total_steps - step) / (total_steps - warmup_steps))


class FinetuneSchedule(_Schedule):
    """:func:`lr_factor` as a schedule object (``after``: ``"linear"`` or ``"constant"``).

    >>> FinetuneSchedule(50, 16)(15)  # fewer steps than the warm-up: warm-up only
    0.32
    """

    def __init__(self, warmup_steps: int, total_steps: int, after: str = "linear") -> None:
        super().__init__(warmup_steps, total_steps)
        if after not in ("linear", "constant"):
            raise ConfigError(f"schedule must be one of linear, constant; got {after!r}.")
        self.after = after

    def __call__(self, step: int) -> float:
        assert self.total_steps is not None
        return lr_factor(
            step,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            schedule=self.after,
        )


SCHEDULES: dict[str, type[_Schedule]] = {
    "inverse-sqrt": InverseSqrt,
    "constant": Constant,
    "linear": Linear,
    "cosine": Cosine,
}
"""Schedule name → class."""


def make_schedule(name: str, *, warmup_steps: int, total_steps: int | None = None) -> _Schedule:
    """Build the named schedule factor.

    Raises:
        ConfigError: Unknown name (the message lists the choices) or bad step counts.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choices: {', '.join(sorted(SCHEDULES))}.")
    return SCHEDULES[name](warmup_steps, total_steps)


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str | _Schedule,
    *,
    warmup_steps: int = 0,
    total_steps: int | None = None,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` applying a schedule to ``optimizer``.

    Args:
        optimizer: The optimizer.
        name: A schedule name (built with :func:`make_schedule`) or a schedule object such as
            :class:`FinetuneSchedule`.
        warmup_steps: Warm-up length, for a name.
        total_steps: Run length, for a name.

    Call ``scheduler.step()`` after each ``optimizer.step()``; the first step uses ``factor(0)``.
    """
    schedule = (
        name
        if isinstance(name, _Schedule)
        else make_schedule(name, warmup_steps=warmup_steps, total_steps=total_steps)
    )
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
