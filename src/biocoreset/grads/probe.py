"""A tiny synthetic batch the hook engine runs once to learn how a model uses its parameters.

The batch has :data:`PROBE_BATCH` rows of different lengths (so padding is present) and a length
:data:`PROBE_TOKENS` that differs from the batch size, so the batch dimension of every layer input
can be told apart from the sequence dimension.

An adapter can supply its own probe with a ``probe_batch()`` method returning a
:class:`~biocoreset.protocols.Batch` of :data:`PROBE_BATCH` rows; otherwise one is built from the
adapter's ``mask_token_id``, ``pad_token_id`` and ``random_token_ids`` (as every
:class:`~biocoreset.adapters.base.MaskedLMAdapter` has).

Example:
    >>> from biocoreset.adapters.hf import HFAdapter
    >>> from biocoreset.testing import tiny_esm
    >>> batch = probe_batch(HFAdapter(*tiny_esm()))
    >>> len(batch), tuple(batch.input_ids.shape)
    (5, (5, 11))
"""

from __future__ import annotations

import torch

from biocoreset.errors import ConfigError
from biocoreset.protocols import Batch, ModelAdapter, capabilities

__all__ = ["PROBE_BATCH", "PROBE_TOKENS", "ProbeUnavailable", "probe_batch"]


class ProbeUnavailable(ConfigError):
    """The adapter offers no way to build a probe batch (``make_engine("auto")`` then uses the loop)."""


PROBE_BATCH = 5
PROBE_TOKENS = 11
_LENGTHS = (11, 7, 4, 9, 2)


def probe_batch(adapter: ModelAdapter) -> Batch:
    """Return the adapter's probe batch, or build one from its token ids.

    Raises:
        ProbeUnavailable: The adapter has neither ``probe_batch()`` nor the token ids to build one.
        ConfigError: ``probe_batch()`` returned something other than a 5-row batch.
    """
    caps = capabilities(adapter)
    if caps.probe_batch is not None:
        batch = caps.probe_batch()
        if not isinstance(batch, Batch) or len(batch) != PROBE_BATCH:
            raise ConfigError(
                f"{type(adapter).__name__}.probe_batch() must return a Batch of {PROBE_BATCH} rows, got {batch!r}."
            )
        return batch
    mask, pad = caps.mask_token_id, caps.pad_token_id
    tokens = list(caps.random_token_ids or ())
    if mask is None or pad is None or not tokens:
        raise ProbeUnavailable(
            f"the hook engine cannot build a probe batch for {type(adapter).__name__}: give the adapter a "
            "probe_batch() method (a Batch of 5 rows of different lengths), or mask_token_id, "
            "pad_token_id and random_token_ids attributes; or use engine='loop'."
        )
    B, T = PROBE_BATCH, PROBE_TOKENS
    input_ids = torch.full((B, T), int(pad), dtype=torch.long)
    labels = torch.full((B, T), -100, dtype=torch.long)
    attention = torch.zeros((B, T), dtype=torch.long)
    for b, n in enumerate(_LENGTHS):
        row = torch.tensor([tokens[(b + 3 * t) % len(tokens)] for t in range(n)], dtype=torch.long)
        input_ids[b, :n] = row
        attention[b, :n] = 1
        for t in range(b % 2, n, 3):  # a few labelled positions per row, at least one
            labels[b, t] = row[t]
            input_ids[b, t] = int(mask)
    return Batch(
        ids=tuple(f"probe{b}" for b in range(B)),
        input_ids=input_ids,
        attention_mask=attention,
        labels=labels,
        lengths=torch.tensor(_LENGTHS, dtype=torch.long),
    )
