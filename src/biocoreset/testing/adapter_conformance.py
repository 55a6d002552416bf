"""The adapter conformance checks, each a top-level function of ``(adapter, case)`` (``case``: an
:class:`AdapterCase`, the arguments of :func:`~biocoreset.testing.check_adapter`; by default
random RNA records, seed 0) that raises :class:`AssertionError` saying what failed.

:data:`ADAPTER_CHECKS` are every adapter's; :func:`capability_checks` adds one check per optional
capability the adapter has (as scikit-learn's ``estimator_checks`` yields checks by tag):

* ``probe_batch`` → :func:`probe_batch_runs_through_engine`;
* ``composition_free`` (the adapter's flag, or derived as the scoring does) →
  :func:`loss_free_of_batch_companions`;
* ``max_length`` → :func:`truncation_honours_policy`;
* ``encode`` → :func:`encode_agrees_with_collate`.

Example:
    >>> from biocoreset.testing import tiny_adapter
    >>> adapter = tiny_adapter()
    >>> [c.__name__ for c in capability_checks(adapter)]
    ['loss_free_of_batch_companions', 'truncation_honours_policy', 'encode_agrees_with_collate']
    >>> encode_agrees_with_collate(adapter)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import torch

from biocoreset.errors import ConfigError, InputError
from biocoreset.protocols import Batch, LayerFactors, ModelAdapter, capabilities
from biocoreset.testing.kit import F64, close, kit_records, tolerance

__all__ = [
    "ADAPTER_CHECKS",
    "AdapterCase",
    "capability_checks",
    "collate_deterministic",
    "encode_agrees_with_collate",
    "gradients_match_brute_force",
    "labelled_positions",
    "loss_batch_separable",
    "loss_free_of_batch_companions",
    "masking_per_record",
    "parameter_groups",
    "probe_batch_runs_through_engine",
    "protocol",
    "scored_parameters",
    "truncation_honours_policy",
]


@attrs.frozen(kw_only=True)
class AdapterCase:
    """What an adapter check runs on (the arguments of
    :func:`~biocoreset.testing.check_adapter`).

    Attributes:
        records: ``(id, sequence)`` records the adapter accepts (``None``: random RNA, 4–14
            letters).
        seed: Masking seed.
        rtol: Relative tolerance (``None``: from the model's dtype).
        engine: Gradient engine (``"auto"``, ``"hooks"`` or ``"loop"``).
    """

    records: Sequence[tuple[str, str]] | None = None
    seed: int = 0
    rtol: float | None = None
    engine: str = "auto"

    def recs(self) -> list[tuple[str, str]]:
        """The records (the given ones, else five random RNA records)."""
        return list(self.records) if self.records is not None else kit_records(5, self.seed)

    def tol(self, adapter: ModelAdapter) -> float:
        """The relative tolerance for ``adapter``."""
        return tolerance(adapter, self.rtol)


DEFAULT = AdapterCase()


def _losses(adapter: ModelAdapter, records: Sequence[tuple[str, str]], seed: int) -> torch.Tensor:
    with torch.no_grad():
        return adapter.per_sample_loss(adapter.collate(list(records), seed=seed)).to(F64).cpu()


def protocol(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """It implements :class:`~biocoreset.protocols.ModelAdapter`."""
    assert isinstance(adapter, ModelAdapter), f"{adapter!r} does not implement ModelAdapter"


def parameter_groups(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """The parameter groups are disjoint and name trainable parameters."""
    named_params = dict(adapter.model.named_parameters())
    seen: set[str] = set()
    for group, members in adapter.parameter_groups().items():
        for n in members:
            assert n in named_params and named_params[n].requires_grad, (
                f"group {group!r} lists {n!r}, not a trainable parameter"
            )
            assert n not in seen, f"parameter {n!r} is in two groups"
            seen.add(n)


def scored_parameters(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """The scored parameters are trainable parameters of the model, by their names."""
    named_params = dict(adapter.model.named_parameters())
    params = adapter.scored_parameters()
    assert params and all(
        named_params.get(n) is p and p.requires_grad for n, p in params.items()
    ), "scored_parameters() must return trainable parameters of adapter.model by their names"


def collate_deterministic(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """The same records and seed give the same batch."""
    recs = case.recs()
    one, two = adapter.collate(recs, seed=case.seed), adapter.collate(recs, seed=case.seed)
    for field in ("input_ids", "attention_mask", "labels"):
        assert torch.equal(getattr(one, field), getattr(two, field)), (
            f"collate() is not deterministic: {field} differs for the same records and seed"
        )


def labelled_positions(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """Every row has at least one labelled position."""
    batch = adapter.collate(case.recs(), seed=case.seed)
    assert bool(((batch.labels != -100).sum(1) >= 1).all()), "a row has no labelled position"


def masking_per_record(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """A record's row (tokens and labels) does not depend on the order or company of the others."""
    recs = case.recs()
    one, flipped = (
        adapter.collate(recs, seed=case.seed),
        adapter.collate(recs[::-1], seed=case.seed),
    )
    for b, rid in enumerate(one.ids):
        f = flipped.ids.index(rid)
        width = int(one.attention_mask[b].sum())
        for field in ("input_ids", "labels"):
            x = getattr(one, field)[b, :width]
            y = getattr(flipped, field)[f, : int(flipped.attention_mask[f].sum())]
            assert torch.equal(x, y), (
                f"record {rid!r}: {field} depends on the other records in the batch (masking "
                "must be a function of (seed, id, sequence) only)"
            )


def loss_batch_separable(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """Each sample's loss in a batch equals its loss in a batch of one."""
    recs = case.recs()
    batch_loss = _losses(adapter, recs, case.seed)
    single = torch.cat([_losses(adapter, [r], case.seed) for r in recs])
    tol = case.tol(adapter)
    err = close(batch_loss, single)
    assert err <= tol, (
        f"per_sample_loss is not batch-separable: losses in a batch differ from batches of one "
        f"by {err:.2e} (relative; tolerance {tol:.0e})"
    )


def _engine_grads(eng: object, batch: Batch) -> dict[str, torch.Tensor]:
    got: dict[str, torch.Tensor] = {}

    def collect(factors: LayerFactors) -> None:
        for name, g in factors.per_sample_grads().items():
            got[name] = g.detach().to(F64).cpu()

    eng.run(batch, collect)  # type: ignore[attr-defined]
    return got


def _compare_rows(
    adapter: ModelAdapter,
    got: dict[str, torch.Tensor],
    rows: Sequence[tuple[str, Callable[[], torch.Tensor]]],
    tol: float,
) -> None:
    """Each row's engine gradients against ``torch.autograd.grad`` of its loss."""
    params = adapter.scored_parameters()
    assert set(got) == set(params), (
        f"the engine produced gradients for {sorted(set(got) ^ set(params))[:5]} differently "
        "from scored_parameters()"
    )
    names = list(params)
    for b, (rid, loss_of) in enumerate(rows):
        with torch.enable_grad():
            ref = torch.autograd.grad(loss_of(), [params[n] for n in names], allow_unused=True)
        for n, g in zip(names, ref, strict=True):
            want = torch.zeros_like(params[n]) if g is None else g
            err = close(got[n][b], want)
            assert err <= tol, (
                f"record {rid!r}: per-sample gradient of {n!r} from the engine differs "
                f"from brute force by {err:.2e} (relative; tolerance {tol:.0e})"
            )


def gradients_match_brute_force(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """The gradient engine's per-sample gradients equal brute force (one
    ``torch.autograd.grad`` per record, in a batch of its own)."""
    from biocoreset.grads import make_engine

    recs = case.recs()
    eng = make_engine(adapter, adapter.scored_parameters(), engine=case.engine)
    got = _engine_grads(eng, adapter.collate(recs, seed=case.seed))
    rows = [
        (r[0], lambda r=r: adapter.per_sample_loss(adapter.collate([r], seed=case.seed))[0])
        for r in recs
    ]
    _compare_rows(adapter, got, rows, case.tol(adapter))


def probe_batch_runs_through_engine(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """The adapter's ``probe_batch()`` is a batch of 5 rows that the hook engine probes the model
    with and runs: its per-sample gradients equal brute force on each row of that batch."""
    from biocoreset.grads import make_engine
    from biocoreset.grads.probe import PROBE_BATCH

    probe = capabilities(adapter).probe_batch
    assert probe is not None, "the adapter has no probe_batch() method"
    batch = probe()
    assert isinstance(batch, Batch) and len(batch) == PROBE_BATCH, (
        f"probe_batch() must return a Batch of {PROBE_BATCH} rows, got {batch!r}"
    )
    try:
        eng = make_engine(adapter, adapter.scored_parameters(), engine="hooks")
        got = _engine_grads(eng, batch)
    except ConfigError as exc:
        raise AssertionError(f"the hook engine cannot run the probe batch: {exc}") from None
    rows = [(rid, lambda b=b: adapter.per_sample_loss(batch)[b]) for b, rid in enumerate(batch.ids)]
    _compare_rows(adapter, got, rows, case.tol(adapter))


def _letters(records: Sequence[tuple[str, str]], n: int) -> str:
    """``n`` letters taken from the records, in turn (so the adapter accepts them)."""
    text = "".join(s for _, s in records)
    return (text * (n // len(text) + 1))[:n]


def loss_free_of_batch_companions(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """A composition-free adapter's loss of a record is the same beside a long companion (a wider
    padded batch) as alone."""
    recs = case.recs()
    longest = max(len(s) for _, s in recs)
    limit = capabilities(adapter).max_length or 3 * longest
    companion = ("companion", _letters(recs, min(limit, 3 * longest)))
    alone = torch.cat([_losses(adapter, [r], case.seed) for r in recs])
    beside = _losses(adapter, [companion, *recs], case.seed)[1:]
    tol = case.tol(adapter)
    err = close(beside, alone)
    assert err <= tol, (
        f"the adapter is composition-free (composition_free, or derived from loss_mode, "
        f"attend_to_padding and pad_to) but a long companion in the batch changes the losses by "
        f"{err:.2e} (relative; tolerance {tol:.0e})"
    )


def _restored(batch: Batch, b: int) -> list[int]:
    """Row ``b``'s tokens with the masked positions restored from the labels."""
    width = int(batch.attention_mask[b].sum())
    labels, inputs = batch.labels[b, :width], batch.input_ids[b, :width]
    return torch.where(labels != -100, labels, inputs).tolist()


def truncation_honours_policy(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """A record longer than ``max_length``: refused naming the record (``long_policy="error"``),
    cut as ``truncation`` says (``"truncate"``: the first ``max_length`` residues and the closing
    token, or the first tokens), else scored with a finite loss."""
    caps = capabilities(adapter)
    assert caps.max_length is not None, "the adapter has no max_length"
    limit = int(caps.max_length)
    long = ("long-record", _letters(case.recs(), limit + 3))
    if caps.long_policy == "error":
        try:
            adapter.collate([long], seed=case.seed)
        except InputError as exc:
            assert long[0] in str(exc), f"the error does not name the record: {exc}"
            return
        raise AssertionError(
            f"long_policy='error' but collate() accepted {limit + 3} residues (max_length={limit})"
        )
    batch = adapter.collate([long], seed=case.seed)
    with torch.no_grad():
        loss = adapter.per_sample_loss(batch)
    assert bool(torch.isfinite(loss).all()), f"a record over max_length gives loss {loss}"
    if caps.long_policy != "truncate" or caps.encode is None:
        return
    ids, residues = caps.encode(*long)
    if caps.truncation == "first-tokens":
        want = list(ids[: limit + len(ids) - sum(residues)])
    else:
        kept = [i for i, r in enumerate(residues) if r][:limit]
        want = [t for i, t in enumerate(ids) if not residues[i] or i in set(kept)]
    got = _restored(batch, 0)
    assert got == want, (
        f"long_policy='truncate', truncation={caps.truncation!r}: the row of a record of "
        f"{limit + 3} residues (max_length={limit}) is {len(got)} tokens, not the {len(want)} "
        "the policy keeps" + ("" if len(got) != len(want) else " (same length, different tokens)")
    )


def encode_agrees_with_collate(adapter: ModelAdapter, case: AdapterCase = DEFAULT) -> None:
    """``encode()`` gives the tokens ``collate()`` masks: each row, masked positions restored
    from the labels, is the record's ``encode()``, and only residues are labelled."""
    caps = capabilities(adapter)
    assert caps.encode is not None
    recs = [r for r in case.recs() if len(r[1]) <= int(caps.max_length or len(r[1]))]
    batch = adapter.collate(recs, seed=case.seed)
    for b, (rid, seq) in enumerate(recs):
        ids, residues = caps.encode(rid, seq)
        assert _restored(batch, b) == [int(t) for t in ids], (
            f"record {rid!r}: collate()'s row (masked positions restored) is not encode()'s tokens"
        )
        if caps.loss_mode == "masked":
            width = len(ids)
            labelled = (batch.labels[b, :width] != -100).tolist()
            assert all(r for r, x in zip(residues, labelled, strict=True) if x), (
                f"record {rid!r}: collate() labels a position encode() does not mark as a residue"
            )


ADAPTER_CHECKS = (
    protocol,
    parameter_groups,
    scored_parameters,
    collate_deterministic,
    labelled_positions,
    masking_per_record,
    loss_batch_separable,
    gradients_match_brute_force,
)
"""Every adapter's checks, in order."""


def capability_checks(adapter: ModelAdapter) -> list[Callable[..., None]]:
    """The checks of the optional capabilities ``adapter`` has (see the module docstring)."""
    from biocoreset.scoring.streaming import composition_free

    caps = capabilities(adapter)
    chosen: list[Callable[..., None]] = []
    if caps.probe_batch is not None:
        chosen.append(probe_batch_runs_through_engine)
    if composition_free(adapter):
        chosen.append(loss_free_of_batch_companions)
    if caps.max_length is not None:
        chosen.append(truncation_honours_policy)
    if caps.encode is not None:
        chosen.append(encode_agrees_with_collate)
    return chosen
