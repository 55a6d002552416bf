"""mask_reduce="mean-gradient": the unbiased score of the mean gradient over K mask draws,
U = (‖Σ_k g_k‖²_W − Σ_k ‖g_k‖²_W) / (K(K−1)), against a float64 brute force (one sample and one
draw at a time, torch.autograd.grad) on tiny real architectures; the default is untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.config import ScoreConfig
from biocoreset.data.masking import MaskingConfig
from biocoreset.errors import ConfigError, QualityWarning
from biocoreset.grads import make_engine
from biocoreset.scoring.components import build_components
from biocoreset.stats import length_control
from biocoreset.testing import random_rna, tiny_bert, tiny_esm
from biocoreset.testing.reference import flatten_block, implied_matrix
from floats import assert_equal_to_rounding
from reference import per_sample_grads

# tiny random models are unstable across draws; the warning has its own tests (test_draws.py)
pytestmark = pytest.mark.filterwarnings("ignore:the scores are not stable across mask draws")


def _adapter(kind: str):
    if kind == "esm":
        return HFAdapter(*tiny_esm(seed=1))
    if kind == "bert":
        return HFAdapter(*tiny_bert(seed=2))
    from biocoreset.plugins import create

    torch.manual_seed(3)
    return create("adapter", "rna-fm", size="tiny", dtype="float64")


def _brute(adapter, records, names, *, seed, draws):
    """``[K, N, P]`` per-draw per-sample gradients, one sample and one draw at a time."""
    return torch.stack(
        [
            per_sample_grads(adapter, records, names, seed=seed, draw=k, draws=draws)
            for k in range(draws)
        ]
    )


def _unbiased(g: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """U from ``[K, N, P]`` gradients and a ``[P, P]`` (or ``[P]`` diagonal) weight."""
    K = g.shape[0]

    def form(v: torch.Tensor) -> torch.Tensor:
        return (v.square() * w).sum(-1) if w.dim() == 1 else ((v @ w) * v).sum(-1)

    total = form(g.sum(0))
    per = form(g).sum(0)
    return ((total - per) / (K * (K - 1))).numpy()


@pytest.mark.parametrize(
    ("kind", "curvature", "draws", "schedule"),
    [
        ("esm", "diagonal", 3, "independent"),
        ("bert", "diagonal", 4, "auto"),
        ("esm", "identity", 2, "independent"),
        ("rna-fm", "diagonal", 4, "independent"),
    ],
)
def test_mean_gradient_matches_bruteforce(kind, curvature, draws, schedule):
    seed = 5
    adapter = _adapter(kind)
    adapter.masking = MaskingConfig(schedule=schedule)
    records = random_rna(7, seed=4, min_len=4, max_len=24)  # varied lengths: padding present
    result = score(
        adapter,
        records,
        subset=4,
        batch_size=3,
        seed=seed,
        curvature=curvature,
        mask_draws=draws,
        mask_reduce="mean-gradient",
    )
    names = list(adapter.scored_parameters())
    g = _brute(adapter, records, names, seed=seed, draws=draws)
    if curvature == "identity":
        w = torch.ones(g.shape[-1], dtype=torch.float64)
    else:  # the paper's Fisher: the mean over draws of each draw's D_sub empirical Fisher
        rows = [result.ids.index(i) for i in result.metadata["subset_ids"]]
        fisher = g[:, rows].pow(2).mean(1).mean(0)
        lam = result.metadata["damping"]
        assert lam == pytest.approx(0.1 * float(fisher.mean()), rel=1e-9)
        w = 1.0 / (fisher + lam)
    expected = _unbiased(g, w)
    np.testing.assert_allclose(
        result.scores, expected, rtol=1e-6, atol=1e-9 * np.abs(expected).max()
    )
    # the relation to the mean score: mean-score = ‖ḡ‖² + (mean-score − U)/K, i.e.
    # K²‖ḡ‖²_W = K(K−1)·U + Σ_k ‖g_k‖²_W
    mean_score = score(
        adapter,
        records,
        subset=4,
        batch_size=3,
        seed=seed,
        curvature=curvature,
        mask_draws=draws,
    ).scores
    form_mean = (g.mean(0).square() * w).sum(-1).numpy() if w.dim() == 1 else None
    lhs = draws**2 * form_mean
    np.testing.assert_allclose(
        lhs, draws * (draws - 1) * result.scores + draws * mean_score, rtol=1e-6
    )
    meta = result.metadata
    assert meta["mask_reduce"] == "mean-gradient" and meta["mask_draws"] == draws
    assert (meta["stability"] is None) == (draws < 4)
    if draws >= 4:  # halves: each half's own U
        assert meta["stability"]["draws"] == draws


@pytest.mark.slow
@pytest.mark.parametrize("curvature", ["kfac", "ekfac"])
def test_mean_gradient_with_kronecker_curvatures(curvature, monkeypatch):
    """K-FAC/EK-FAC through the same grouped factors: U with the curvature's own matrix."""
    import biocoreset.api

    built = []

    def keep(*args, **kwargs):
        parts = build_components(*args, **kwargs)
        built.append(parts[2])
        return parts

    monkeypatch.setattr(biocoreset.api, "build_components", keep)
    seed, draws = 2, 3
    adapter = HFAdapter(*tiny_esm(seed=3))
    records = random_rna(6, seed=8, min_len=4, max_len=20)
    patterns = ("*attention.self.query.*", "*attention.self.value.*")
    result = score(
        adapter,
        records,
        curvature=curvature,
        subset=6,
        batch_size=4,
        seed=seed,
        parameters=patterns,
        mask_draws=draws,
        mask_reduce="mean-gradient",
    )
    (curv,) = built
    names = list(adapter.scored_parameters(patterns))
    g = _brute(adapter, records, names, seed=seed, draws=draws)
    params = adapter.scored_parameters(patterns)
    offsets = np.cumsum([0] + [params[n].numel() for n in names])
    columns = {n: slice(int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(names)}
    flat = g.reshape(draws * len(records), -1)
    expected = np.zeros(len(records))
    for block in make_engine(adapter, params).blocks:
        per_name = {n: flat[:, columns[n]].reshape(-1, *p.shape) for n, p in block.params.items()}
        gb = flatten_block(block, per_name).reshape(draws, len(records), -1)
        expected += _unbiased(gb, implied_matrix(curv, block))
    np.testing.assert_allclose(result.scores, expected, rtol=1e-6)


def test_mean_gradient_does_not_depend_on_batches():
    model, tok = tiny_esm(seed=1)
    records = random_rna(8, seed=2, min_len=6, max_len=30)
    opts = dict(tokenizer=tok, subset=4, mask_draws=2, mask_reduce="mean-gradient")
    a = score(model, records, batch_size=3, **opts)
    b = score(model, records[::-1], batch_size=5, length_window=1, **opts)
    np.testing.assert_allclose(b.scores[::-1], a.scores, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.loss[::-1], a.loss, rtol=1e-12)
    # the default is not moved by the option's existence
    c = score(model, records, batch_size=3, tokenizer=tok, subset=4, mask_draws=2)
    d = score(
        model,
        records,
        batch_size=3,
        tokenizer=tok,
        subset=4,
        mask_draws=2,
        mask_reduce="mean-score",
    )
    # invariant: the default is "mean-score" (two runs: equal to float64 rounding)
    assert_equal_to_rounding(c.scores, d.scores)
    assert c.metadata["mask_reduce"] == "mean-score"
    np.testing.assert_allclose(c.loss, a.loss, rtol=1e-12)


def test_mask_reduce_errors():
    with pytest.raises(ConfigError, match=r"mean-gradient.*mask_draws >= 2.*mean-score"):
        ScoreConfig(mask_reduce="mean-gradient")
    with pytest.raises(ConfigError, match="mask_reduce must be one of"):
        ScoreConfig(mask_reduce="mean")
    model, tok = tiny_esm(seed=1)
    with pytest.raises(ConfigError, match="self-influence"):
        score(
            model,
            random_rna(4),
            tokenizer=tok,
            scorer="grad-norm",
            mask_draws=2,
            mask_reduce="mean-gradient",
        )


def test_mean_gradient_refuses_the_cover_schedule():
    """U is unbiased only for independent draws: 'cover' is refused, from the config and from an
    adapter's own masking, in one line that names both options and the fix."""
    cover = MaskingConfig(schedule="cover")
    with pytest.raises(ConfigError) as err:
        ScoreConfig(mask_draws=4, mask_reduce="mean-gradient", masking=cover)
    message = str(err.value)
    assert "\n" not in message and "'cover'" in message and "unbiased" in message
    assert "schedule='independent'" in message and "mask_reduce='mean-score'" in message
    for schedule in ("auto", "independent"):  # fine
        ScoreConfig(mask_draws=4, mask_reduce="mean-gradient", masking={"schedule": schedule})
    ScoreConfig(mask_draws=4, masking=cover)  # cover with the mean score: fine
    adapter = HFAdapter(*tiny_esm(seed=1))
    adapter.masking = cover
    records = random_rna(5, seed=2, min_len=6, max_len=20)
    with pytest.raises(ConfigError, match=r"schedule is 'cover'.*mask_reduce='mean-score'"):
        score(adapter, records, subset=3, mask_draws=4, mask_reduce="mean-gradient")
    assert score(adapter, records, subset=3, mask_draws=4).metadata["mask_schedule"] == "cover"


@pytest.mark.parametrize("schedule", ["independent", "cover"])
def test_why_cover_is_refused_u_is_biased_under_cover(schedule):
    """The reason for the refusal, on the library's own masks: a gradient linear in the mask,
    ``g = Σ_{i masked} v_i``. Over many sequences the mean of ``U`` matches ``‖E_m g‖²`` with
    independent draws; under 'cover' (disjoint draws) it is far off."""
    from biocoreset.data.masking import mask_positions

    rng = np.random.default_rng(0)
    length, draws, n_ids = 40, 4, 3000
    v = rng.normal(size=(length, 3))
    config = MaskingConfig(schedule=schedule)
    tokens, maskable = [0, *range(5, 5 + length), 2], [False, *[True] * length, False]
    u = np.empty(n_ids)
    for j in range(n_ids):
        g = np.empty((draws, 3))
        for k in range(draws):
            _, labels = mask_positions(
                f"s{j}", tokens, maskable, seed=0, config=config, mask_token_id=4,
                random_token_ids=[5], draw=k, draws=draws,
            )  # fmt: skip
            chosen = [i - 1 for i, label in enumerate(labels) if label != -100]
            g[k] = v[chosen].sum(0)
        u[j] = ((g.sum(0) ** 2).sum() - (g**2).sum()) / (draws * (draws - 1))
    n = round(0.15 * length)
    truth = ((n / length * v.sum(0)) ** 2).sum()  # ‖E_m g‖²: each position masked w.p. n/L
    se = u.std(ddof=1) / np.sqrt(n_ids)
    if schedule == "independent":
        assert abs(u.mean() - truth) < 4 * se
    else:  # disjoint draws: E[g_k·g_l] = n²/(L(L−1)) (‖Σv‖² − Σ‖v_i‖²) ≠ ‖E_m g‖²
        s2, each = (v.sum(0) ** 2).sum(), (v**2).sum()
        cover = n**2 / (length * (length - 1)) * (s2 - each)
        assert abs(u.mean() - cover) < 4 * se and abs(u.mean() - truth) > 10 * se


def test_length_control_warns_when_it_drops_the_log():
    L = np.arange(10, 110)
    s = 1.0 / L - 0.02
    with pytest.warns(QualityWarning, match=r"scores are <= 0.*identity"):
        fit = length_control(s, L)
    assert fit.transform == "identity"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert length_control(1.0 / L, L).transform == "log"


@pytest.mark.slow
def test_resume_with_the_other_reduction_is_refused(tmp_path, monkeypatch):
    from biocoreset.store.shards import ScoreStore

    model, tok = tiny_esm(seed=1)
    records = random_rna(12, seed=2, min_len=6, max_len=30)
    opts = dict(tokenizer=tok, subset=4, batch_size=2, shard_size=4, mask_draws=2)
    output = tmp_path / "s.parquet"
    written = []
    real = ScoreStore.write_shard

    def crash_after_one(self, record):
        if written:
            raise KeyboardInterrupt
        written.append(1)
        return real(self, record)

    monkeypatch.setattr(ScoreStore, "write_shard", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        score(model, records, output=output, mask_reduce="mean-gradient", **opts)
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"different configuration \(mask_reduce"):
        score(model, records, output=output, **opts)
    resumed = score(model, records, output=output, mask_reduce="mean-gradient", **opts)
    fresh = score(model, records, mask_reduce="mean-gradient", **opts)
    np.testing.assert_allclose(resumed.scores, fresh.scores, rtol=1e-12)


@pytest.mark.slow
def test_loop_engine_agrees_with_the_hook_engine():
    """The generic (materialised) grouping path against the factor-level one."""
    model, tok = tiny_esm(seed=4)
    records = random_rna(6, seed=3, min_len=5, max_len=25)
    opts = dict(tokenizer=tok, subset=4, batch_size=3, mask_draws=4, mask_reduce="mean-gradient")
    hooks = score(model, records, engine="hooks", **opts)
    loop = score(model, records, engine="loop", **opts)
    np.testing.assert_allclose(loop.scores, hooks.scores, rtol=1e-9)
    for key in ("split_half", "projected"):
        assert loop.metadata["stability"][key] == pytest.approx(hooks.metadata["stability"][key])
