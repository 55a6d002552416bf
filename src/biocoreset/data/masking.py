"""Deterministic per-sequence masking (DESIGN §2).

A sequence's masked positions and replacements are drawn from a random generator seeded by
``(seed, sequence id)`` only, so its loss, gradient and score never depend on batch composition,
order, sharding or the number of processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import attrs
import numpy as np

from biocoreset.errors import ConfigError

__all__ = ["MaskingConfig", "mask_positions", "sequence_rng"]


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

    >>> MaskingConfig().probability
    0.15
    """

    probability: float = attrs.field(default=0.15, converter=float, validator=_check_prob)
    replacement: tuple[float, float, float] = attrs.field(
        default=(0.8, 0.1, 0.1),
        converter=lambda v: tuple(float(x) for x in v),
        validator=_check_fractions,
    )


def sequence_rng(seed: int, record_id: str) -> np.random.Generator:
    """A generator seeded from ``(seed, record_id)`` only (stable across processes and Python runs).

    >>> float(sequence_rng(0, "a").random()) == float(sequence_rng(0, "a").random())
    True
    """
    digest = hashlib.blake2b(record_id.encode("utf-8"), digest_size=16).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *words]))
    )


def mask_positions(
    record_id: str,
    tokens: Sequence[int],
    maskable: Sequence[bool],
    *,
    seed: int,
    config: MaskingConfig,
    mask_token_id: int,
    random_token_ids: Sequence[int],
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
    rng = sequence_rng(seed, record_id)
    n = max(1, int(np.floor(config.probability * candidates.size + 0.5)))
    chosen = np.sort(rng.choice(candidates, size=min(n, candidates.size), replace=False))
    u = rng.random(chosen.size)
    draws = rng.integers(0, len(random_token_ids), size=chosen.size) if random_token_ids else None
    p_mask, p_random, _ = config.replacement
    for j, pos in enumerate(chosen.tolist()):
        labels[pos] = tokens[pos]
        if u[j] < p_mask:
            out[pos] = mask_token_id
        elif u[j] < p_mask + p_random and draws is not None:
            out[pos] = int(random_token_ids[int(draws[j])])
    return out, labels
