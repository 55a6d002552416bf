"""Deterministic per-sequence masking (``docs/design.md``).

A sequence's masked positions and replacements are drawn from a random generator seeded by
``(seed, sequence id)`` only, so its loss, gradient and score never depend on batch composition,
order, sharding or the number of processes.

Several masks per sequence (``score(..., mask_draws=K)``): draw ``k`` is seeded by
``(seed, sequence id, k)``; draw 0 is the single mask above, bit for bit. Two schedules choose the
positions of the ``K`` draws (:data:`SCHEDULES`):

* ``"independent"`` — every draw picks its positions anew (the draws may overlap);
* ``"cover"`` — the draws walk through a random permutation of the positions in disjoint chunks of
  the masked count, so ⌊1/p⌋ consecutive draws mask every position at most once and together
  (nearly) all of them; a new permutation starts when one is used up. Each draw still masks the
  same number of positions as a single mask.

One draw (``K = 1``) is always the paper's single random mask; ``"auto"`` is ``"independent"``
for ``K >= 2`` too: measured on nRC sequences with an Rfam-pretrained model (``docs/trust.md``,
``benchmarks/bench_trust.py``), ``"cover"`` did not measurably beat independent draws at equal
``K``, and independent draws are what the split-half stability estimate assumes (exchangeable
halves). Choose ``"cover"`` explicitly to mask every position once per ⌊1/p⌋ draws; it works with
``mask_reduce="mean-score"`` only (``"mean-gradient"``'s estimate is unbiased only for
independent draws, so that pair is refused).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
import numpy as np

from biocoreset.errors import ConfigError, did_you_mean

__all__ = ["SCHEDULES", "MaskingConfig", "mask_positions", "resolve_schedule", "sequence_rng"]

SCHEDULES = ("auto", "independent", "cover")
"""How the positions of several mask draws relate (see the module docs)."""


def _check_fractions(
    instance: object, attribute: attrs.Attribute, value: tuple[float, ...]
) -> None:
    if len(value) != 3 or any(v < 0 for v in value) or abs(sum(value) - 1.0) > 1e-9:
        raise ConfigError(
            f"{attribute.name} must be three non-negative fractions (mask, random, keep) summing to 1, "
            f"got {value!r}; BERT's recipe is (0.8, 0.1, 0.1)."
        )


def _check_prob(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise ConfigError(
            f"{attribute.name} must be in (0, 1], got {value!r} (the paper uses 0.15)."
        )


@attrs.frozen(kw_only=True)
class MaskingConfig:
    """How positions are chosen and replaced.

    Attributes:
        probability: Fraction of non-special positions that count in the loss; at least one per
            sequence (``round(probability * L)``, minimum 1).
        replacement: Fractions (mask, random token, keep) of the chosen positions; default BERT
            80/10/10.
        schedule: How the positions of several mask draws relate: ``"auto"`` (default),
            ``"independent"`` or ``"cover"`` (see the module docs).

    >>> MaskingConfig().probability
    0.15
    """

    probability: float = attrs.field(default=0.15, converter=float, validator=_check_prob)
    replacement: tuple[float, float, float] = attrs.field(
        default=(0.8, 0.1, 0.1),
        converter=lambda v: tuple(float(x) for x in v),
        validator=_check_fractions,
    )
    schedule: str = attrs.field(default="auto")

    def __attrs_post_init__(self) -> None:
        resolve_schedule(self.schedule, 1)  # validates


def resolve_schedule(schedule: str, draws: int) -> str:
    """The schedule used for ``draws`` masks: one draw is always the single random mask;
    ``"auto"`` is ``"independent"`` (see the module docs for why).

    >>> resolve_schedule("auto", 1), resolve_schedule("auto", 8), resolve_schedule("cover", 8)
    ('independent', 'independent', 'cover')
    """
    if schedule not in SCHEDULES:
        raise ConfigError(
            f"masking schedule must be one of {', '.join(map(repr, SCHEDULES))}, got {schedule!r}."
            f"{did_you_mean(str(schedule), SCHEDULES)}"
        )
    if draws <= 1:  # one draw is always the paper's single random mask
        return "independent"
    return "independent" if schedule == "auto" else schedule


def sequence_rng(seed: int, record_id: str, *stream: int) -> np.random.Generator:
    """A generator seeded from ``(seed, record_id, *stream)`` only (stable across processes and
    Python runs). Without ``stream`` it is the single-mask generator of ``docs/design.md`` ("Per-sample loss and masking").

    >>> float(sequence_rng(0, "a").random()) == float(sequence_rng(0, "a").random())
    True
    >>> float(sequence_rng(0, "a", 1).random()) == float(sequence_rng(0, "a").random())
    False
    """
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=16).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    extra = [int(x) & 0xFFFFFFFF for x in stream]
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words, *extra]))
    )


_DRAW, _COVER = 0x0D, 0xC0  # stream tags: a draw's own generator; a cover round's permutation


def _chosen(
    record_id: str, candidates: np.ndarray, n: int, seed: int, draw: int, schedule: str
) -> tuple[np.ndarray, np.random.Generator]:
    """Positions of draw ``draw`` and the generator for its replacements."""
    if draw == 0 and schedule == "independent":
        rng = sequence_rng(seed, record_id)
        return np.sort(rng.choice(candidates, size=n, replace=False)), rng
    rng = sequence_rng(seed, record_id, _DRAW, draw)
    if schedule == "independent":
        return np.sort(rng.choice(candidates, size=n, replace=False)), rng
    per_round = max(1, candidates.size // n)
    round_, chunk = divmod(draw, per_round)
    perm = sequence_rng(seed, record_id, _COVER, round_).permutation(candidates)
    return np.sort(perm[chunk * n : (chunk + 1) * n]), rng


def mask_positions(
    record_id: str,
    tokens: Sequence[int],
    maskable: Sequence[bool],
    *,
    seed: int,
    config: MaskingConfig,
    mask_token_id: int,
    random_token_ids: Sequence[int],
    draw: int = 0,
    draws: int = 1,
) -> tuple[list[int], list[int]]:
    """Choose and replace positions of one tokenised sequence.

    Args:
        record_id: The sequence id (part of the seed).
        tokens: Token ids including special tokens.
        maskable: Which positions may be chosen (non-special positions).
        seed: Global seed.
        config: Masking configuration.
        mask_token_id: Id of ``<mask>``.
        random_token_ids: Ids a "random token" replacement draws from (the regular residues).
        draw: Which of the sequence's masks (``0 .. draws - 1``); draw 0 of one is the single mask of ``docs/design.md``.
        draws: How many masks the sequence gets (picks the ``"auto"`` schedule).

    Returns:
        ``(input_ids, labels)``: the corrupted tokens and the labels (original id at chosen
        positions, ``-100`` elsewhere).

    >>> ids, labels = mask_positions("x", [0, 5, 6, 7, 2], [False, True, True, True, False],
    ...     seed=0, config=MaskingConfig(), mask_token_id=9, random_token_ids=[5, 6, 7])
    >>> sum(label != -100 for label in labels)
    1
    """
    candidates = np.flatnonzero(np.asarray(maskable, dtype=bool))
    labels = [-100] * len(tokens)
    out = list(tokens)
    if candidates.size == 0:
        return out, labels
    if not 0 <= draw < max(draws, 1):
        raise ConfigError(f"mask draw {draw} is outside 0..{draws - 1}.")
    n = min(candidates.size, max(1, int(np.floor(config.probability * candidates.size + 0.5))))
    schedule = resolve_schedule(config.schedule, draws)
    chosen, rng = _chosen(record_id, candidates, n, seed, draw, schedule)
    u = rng.random(chosen.size)
    replacements = (
        rng.integers(0, len(random_token_ids), size=chosen.size) if random_token_ids else None
    )
    p_mask, p_random, _ = config.replacement
    for j, pos in enumerate(chosen.tolist()):
        labels[pos] = tokens[pos]
        if u[j] < p_mask:
            out[pos] = mask_token_id
        elif u[j] < p_mask + p_random and replacements is not None:
            out[pos] = int(random_token_ids[int(replacements[j])])
    return out, labels
