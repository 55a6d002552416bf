"""The contracts every component honours.

Four kinds of component make up a run, each a :func:`typing.runtime_checkable` protocol so a plugin
can be checked with ``isinstance`` (see :mod:`biocoreset.testing` for full conformance checks):

* :class:`ModelAdapter` — wraps a masked language model: tokenisation, deterministic masking,
  collation into a :class:`Batch`, the per-sample loss and which parameters are scored.
* :class:`CurvatureEstimator` — fitted on the subset ``D_sub``; answers the per-sample quadratic form
  ``g_zᵀ C⁻¹ g_z`` one parameter block at a time.
* :class:`Scorer` — turns an adapter, a fitted curvature and a batch into one number per sequence.
* :class:`Selector` — maps one score per sequence and a budget to the selected indices.

The per-sample gradient engine (:mod:`biocoreset.grads`) is shared machinery, not a plugin: it
hands every curvature a :class:`LayerFactors` per parameter block, so each can compute what it needs
without the per-sample gradient of the whole model existing at once. What scorers and the fit
driver rely on from it is the :class:`Engine` protocol.

Beyond the required members, the core uses a few **optional capabilities** when a component has
them. They are declared here, so that a plugin can offer them on purpose and the core reads them by
one documented name: an adapter's are the attributes and methods of :class:`AdapterBase`, with
their defaults (the core reads them through :func:`capabilities`, so an adapter that does not
subclass it gets the same defaults; both are defined in :mod:`biocoreset.capabilities` and
re-exported here, their documented home); method capabilities are also small runtime-checkable
protocols (:class:`SupportsValidation`, :class:`SupportsEncode`, :class:`SupportsProbe`), as are
the other kinds' (:class:`MultiPassCurvature`, :class:`SavableCurvature`,
:class:`SupportsReference`, :class:`OrientedSelector`, :class:`PlanningSelector`,
:class:`IdentifiedSelector`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from biocoreset.capabilities import AdapterBase, adapter_class, capabilities

if TYPE_CHECKING:  # torch is imported where it is used: `from biocoreset import select` skips it
    import numpy as np
    import torch

__all__ = [
    "AdapterBase",
    "Batch",
    "CurvatureEstimator",
    "Engine",
    "IdentifiedSelector",
    "LayerFactors",
    "ModelAdapter",
    "MultiPassCurvature",
    "OrientedSelector",
    "ParamBlock",
    "PlanningSelector",
    "SavableCurvature",
    "Scorer",
    "Selector",
    "SupportsEncode",
    "SupportsProbe",
    "SupportsReference",
    "SupportsValidation",
    "adapter_class",
    "capabilities",
]


@attrs.frozen(kw_only=True)
class Batch:
    """A collated, masked batch of sequences.

    Attributes:
        ids: Sequence ids, one per row.
        input_ids: ``[B, T]`` token ids after masking (``<mask>`` and random replacements applied).
        attention_mask: ``[B, T]`` 1 for real tokens (including special tokens), 0 for padding.
        labels: ``[B, T]`` original token id at positions that count in the loss, ``-100`` elsewhere.
            Padding never counts.
        lengths: ``[B]`` number of residues per sequence (special tokens excluded).
        extra: Adapter-specific tensors (passed through untouched).
    """

    ids: tuple[str, ...]
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    lengths: torch.Tensor
    extra: Mapping[str, Any] = attrs.field(factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> Batch:
        """Return a copy with every tensor on ``device``."""
        import torch

        extra = {
            k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in self.extra.items()
        }
        return attrs.evolve(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            labels=self.labels.to(device),
            lengths=self.lengths.to(device),
            extra=extra,
        )


@attrs.frozen(kw_only=True)
class ParamBlock:
    """A group of parameters whose per-sample gradients are produced together.

    Attributes:
        name: Block name, normally the owning module's qualified name (``""`` for the root).
        kind: ``"linear"``, ``"embedding"``, ``"layernorm"`` or ``"generic"``. Only ``"linear"``
            blocks carry Kronecker factors.
        params: Parameter name (qualified, as in ``model.named_parameters()``) → parameter.
    """

    name: str
    kind: str
    params: Mapping[str, torch.nn.Parameter]

    @property
    def numel(self) -> int:
        """Number of scalar parameters in the block."""
        return sum(p.numel() for p in self.params.values())


class LayerFactors:
    """What the gradient engine gives a curvature estimator for one block and one batch.

    ``per_sample_grads()`` is always available (materialised lazily, one block at a time).
    For ``"linear"`` blocks, ``inputs`` (``[B, T, d_in]``, with a trailing column of ones when the
    layer has a bias) and ``output_grads`` (``[B, T, d_out]``) are the Kronecker factors whose
    per-sample outer products sum to the weight gradient; positions that do not count in the loss
    hold zero output gradients.

    Attributes:
        block: The parameter block.
        batch_size: Number of sequences ``B``.
        inputs: Layer inputs for linear blocks, else ``None``.
        output_grads: Gradients of the summed per-sample losses w.r.t. the layer output, else ``None``.
    """

    def __init__(
        self,
        block: ParamBlock,
        batch_size: int,
        grads_fn: Callable[[], dict[str, torch.Tensor]],
        *,
        inputs: torch.Tensor | None = None,
        output_grads: torch.Tensor | None = None,
    ) -> None:
        self.block, self.batch_size = block, batch_size
        self.inputs, self.output_grads = inputs, output_grads
        self._grads_fn = grads_fn
        self._grads: dict[str, torch.Tensor] | None = None

    def per_sample_grads(self) -> dict[str, torch.Tensor]:
        """Per-sample gradients ``{param name: [B, *param.shape]}`` (computed once, then cached)."""
        if self._grads is None:
            self._grads = self._grads_fn()
        return self._grads

    def squared_norms(self) -> torch.Tensor:
        """``[B]`` squared Euclidean norm of each sample's gradient over the block."""
        grads = self.per_sample_grads()
        return sum(g.flatten(1).pow(2).sum(1) for g in grads.values())  # type: ignore[return-value]

    def weighted_squared_norms(self, weights: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[B]`` float64 ``Σ_j w_j g_{b,j}²`` over the block, with ``weights`` shaped like each parameter.

        Computed in ``promote(gradient dtype, weight dtype)``; the result stays on the gradients'
        device (float32 on MPS, which has no float64). Engines may override this (and
        :meth:`sum_squared_grads`) to avoid materialising the per-sample gradients.
        """
        import torch

        out: torch.Tensor | None = None
        for name, g in self.per_sample_grads().items():
            w = weights[name]
            g = g.to(torch.promote_types(g.dtype, w.dtype)).flatten(1)
            q = g.square() @ w.to(g.dtype).flatten()
            q = q.to(torch.float32 if q.device.type == "mps" else torch.float64)
            out = q if out is None else out + q
        return torch.zeros(self.batch_size, dtype=torch.float64) if out is None else out

    def sum_squared_grads(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        """``{param name: Σ_b g_b ⊙ g_b}`` (shaped like the parameter), in ``promote(gradient dtype, dtype)``."""
        import torch

        out = {}
        for name, g in self.per_sample_grads().items():
            g = g.to(torch.promote_types(g.dtype, dtype or g.dtype))
            out[name] = g.square().sum(0)
        return out


@runtime_checkable
class ModelAdapter(Protocol):
    """Wraps a masked language model for scoring.

    An adapter owns everything model-specific: the alphabet and tokenisation, deterministic masking
    (a sequence's masked positions depend only on the global seed and the sequence id), collation,
    the per-sample loss and the set of scored parameters.

    The optional capabilities (``loss_mode``, ``masking``, ``stats``, ``device``, ``alphabet``,
    ``validate``, ``probe_batch``, ...) are the members of :class:`AdapterBase`, with their
    defaults; the core reads them through :func:`capabilities`.

    Attributes:
        name: Registered component name (e.g. ``"hf"``, ``"rna-fm"``).
        model: The underlying :class:`torch.nn.Module`.
        max_length: Maximum number of residues per sequence (special tokens excluded).
    """

    name: str
    model: torch.nn.Module
    max_length: int

    def collate(
        self, records: Sequence[tuple[str, str]], *, seed: int, draw: int = 0, draws: int = 1
    ) -> Batch:
        """Tokenise, mask and pad ``(id, sequence)`` records into a :class:`Batch`.

        Masking must be a pure function of ``(seed, id, sequence, draw)`` (draw 0 of 1 is the
        default; ``mask_draws = K`` passes ``draw=k, draws=K``); errors name the id and position.
        """
        ...

    def per_sample_loss(self, batch: Batch) -> torch.Tensor:
        """Return ``[B]`` losses: the masked-LM cross-entropy of each sequence, averaged over the
        positions where ``labels != -100``. Must be differentiable and batch-separable (sample ``b``'s
        loss depends only on row ``b``), so the sum's gradient splits into per-sample gradients."""
        ...

    def parameter_groups(self) -> dict[str, list[str]]:
        """Readable group name (``"embeddings"``, ``"layer 3 attention"``, ``"lm head"``...) →
        qualified parameter names, covering every trainable parameter exactly once."""
        ...

    def scored_parameters(
        self, patterns: Sequence[str] | None = None
    ) -> dict[str, torch.nn.Parameter]:
        """Trainable parameters to score, by qualified name; ``patterns`` are :mod:`fnmatch` globs
        matched against parameter names and group names (``None``: all trainable parameters)."""
        ...


@runtime_checkable
class CurvatureEstimator(Protocol):
    """A curvature ``C`` fitted on ``D_sub``, applied as ``g_zᵀ C⁻¹ g_z`` block by block.

    Life cycle: ``fit_begin(blocks)``; ``fit_accumulate(factors)`` for every block of every batch of
    ``D_sub``; ``fit_end(num_samples, reduce)``; then ``quadratic_form(factors)`` for every block of
    every scored batch. ``reduce`` (may be ``None``) sums a tensor over distributed ranks in place;
    estimators call it on every accumulated statistic so all ranks hold the same curvature.

    An estimator that needs more than one pass over ``D_sub`` (EK-FAC) is a
    :class:`MultiPassCurvature`: its ``fit_passes`` is read after ``fit_begin`` (absent means 1) and
    the driver repeats "``fit_accumulate`` for every block of every batch, then ``fit_end``" that
    many times, calling ``reduce`` the same way on every rank. One whose fitted state can be saved
    with the scores (so a resumed run skips the fit) is a :class:`SavableCurvature`.

    Attributes:
        name: Registered component name.
        needs_fit: ``False`` when ``fit_*`` may be skipped (e.g. identity).
    """

    name: str
    needs_fit: bool

    def fit_begin(self, blocks: Sequence[ParamBlock]) -> None:
        """Allocate statistics for ``blocks``."""
        ...

    def fit_accumulate(self, factors: LayerFactors) -> None:
        """Add one batch's contribution of one block."""
        ...

    def fit_end(
        self, num_samples: int, reduce: Callable[[torch.Tensor], None] | None = None
    ) -> None:
        """Normalise by ``num_samples`` (the global count) and prepare the inverse."""
        ...

    def quadratic_form(self, factors: LayerFactors) -> torch.Tensor:
        """Return ``[B]`` float64 values ``g_bᵀ C_block⁻¹ g_b`` for the block (on any device: scorers
        sum the blocks where they are and move a batch's scores to the host once)."""
        ...

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable facts to record with the scores (absolute damping, per-block kinds...)."""
        ...


@runtime_checkable
class Scorer(Protocol):
    """Turns an adapter, a fitted curvature and a batch into one score per sequence.

    Attributes:
        name: Registered component name.
        needs_curvature: Whether :meth:`score_batch` uses the curvature (and so it must be fitted).
        needs_gradients: Whether per-sample gradients are needed (``False`` for the loss baseline).
    """

    name: str
    needs_curvature: bool
    needs_gradients: bool

    def score_batch(
        self,
        adapter: ModelAdapter,
        batch: Batch,
        engine: Engine,
        curvature: CurvatureEstimator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scores [B] float64, losses [B] float64)`` for ``batch``; ``engine.run(batch,
        on_block)`` gives the per-sample losses and each block's :class:`LayerFactors`."""
        ...


@runtime_checkable
class SupportsReference(Protocol):
    """A scorer that states its scores in brute-force terms, so the conformance kit
    (:func:`~biocoreset.testing.check_scorer`) can compare it without knowing its type."""

    def reference_scores(
        self, brute_force: Any, curvature: CurvatureEstimator | None
    ) -> torch.Tensor:
        """``[N]`` float64 scores of the records of ``brute_force`` (a
        :class:`~biocoreset.testing.reference.BruteForce`: per-record losses, flattened
        per-sample gradients per block, and ``quadratic_forms(curvature)``) with the fitted
        ``curvature``."""
        ...


@runtime_checkable
class Selector(Protocol):
    """Chooses a coreset from scores.

    Optional: :class:`OrientedSelector` (a direction resolved from the scores' sign convention),
    :class:`PlanningSelector` (a plan recorded with the selection, e.g. CCI's strata) and
    :class:`IdentifiedSelector` (the scores' ids bound before selecting, e.g. ``cluster``).

    Attributes:
        name: Registered component name.
    """

    name: str

    def select(self, scores: np.ndarray, budget: int, *, seed: int) -> np.ndarray:
        """Return the selected row indices (``int64``, no duplicates, exactly ``budget`` of them unless
        the selector documents otherwise). ``scores`` is float64 and finite."""
        ...


@runtime_checkable
class Engine(Protocol):
    """The per-sample gradient engine, as scorers and the curvature fit use it
    (:class:`~biocoreset.grads.engine.HookEngine`, :class:`~biocoreset.grads.loop.LoopEngine`).

    Optional: ``describe() -> dict`` (a JSON-serialisable summary recorded with the scores).

    Attributes:
        name: Engine name recorded with the scores (``"hooks"``, ``"loop"``).
        blocks: The parameter blocks ``run`` reports, in order (what ``fit_begin`` receives).
    """

    name: str
    blocks: Sequence[ParamBlock]

    def run(
        self, batch: Batch, on_block: Callable[[LayerFactors], None] | None = None
    ) -> torch.Tensor:
        """Compute ``[B]`` detached per-sample losses and hand every block's factors to
        ``on_block`` once (``None``: forward only)."""
        ...


@runtime_checkable
class SupportsValidation(Protocol):
    """An adapter that normalises or rejects a record before the alphabet check."""

    def validate(self, record_id: str, sequence: str) -> str:
        """Return the sequence to check (e.g. upper case, T→U), or raise
        :class:`~biocoreset.errors.InputError` naming the record."""
        ...


@runtime_checkable
class SupportsEncode(Protocol):
    """An adapter that tokenises one sequence without masking (used to embed sequences for the
    downstream benchmarks)."""

    def encode(self, record_id: str, sequence: str) -> tuple[list[int], list[bool]]:
        """Token ids with special tokens, and which positions are residues."""
        ...


@runtime_checkable
class SupportsProbe(Protocol):
    """An adapter that supplies the batch the gradient engine probes its model with (else the
    engine builds one from ``mask_token_id``, ``pad_token_id`` and ``random_token_ids``)."""

    def probe_batch(self) -> Batch:
        """A small collated batch that exercises every scored parameter."""
        ...


@runtime_checkable
class MultiPassCurvature(Protocol):
    """A curvature that needs several passes over ``D_sub`` (e.g. EK-FAC: 2)."""

    fit_passes: int


@runtime_checkable
class SavableCurvature(Protocol):
    """A curvature whose fitted state is stored with the scores, so a resumed run skips the fit."""

    def state_dict(self) -> dict[str, Any]:
        """The fitted state (tensors, numbers and strings only)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` after ``fit_begin`` on the same blocks."""
        ...


@runtime_checkable
class OrientedSelector(Protocol):
    """A selector with a direction that depends on how the scores are stored."""

    def oriented(self, negated: bool) -> Selector:
        """This selector for scores stored as ``-I(z)`` (``negated``) or ``I(z)``."""
        ...


@runtime_checkable
class IdentifiedSelector(Protocol):
    """A selector that needs the scored sequences' ids (e.g. ``cluster``, which looks each id up in
    a cluster file); :func:`biocoreset.select` binds them before selecting and refuses plain
    arrays."""

    def with_ids(self, ids: Sequence[str]) -> Selector:
        """This selector for scores whose row ``i`` is the sequence ``ids[i]``."""
        ...


@runtime_checkable
class PlanningSelector(Protocol):
    """A selector whose selection comes with a plan (recorded and plotted, e.g. CCI's strata)."""

    def plan(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> Any:
        """The plan; its ``selected`` attribute holds what :meth:`Selector.select` returns."""
        ...
