"""The ``esmc`` adapter against the real ``esm`` package: factory, alphabet, exact scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.errors import ConfigError, InputError
from biocoreset.plugins import create, get_registry
from floats import assert_equal_to_rounding
from reference import diagonal_scores, per_sample_grads

pytest.importorskip(
    "esm.models.esmc", reason="the esm package is not installed (docs/install-esm.md)"
)

from biocoreset.adapters import esmc_model
from biocoreset.adapters.esmc import ESMC_MAX_LENGTH, EsmcAdapter
from biocoreset.adapters.esmc_model import ESMC_HF_WEIGHTS, build_esmc, esmc_tokenizer

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def _tiny(seed: int = 0, dtype: torch.dtype = torch.float64):
    torch.manual_seed(seed)
    model = build_esmc("tiny").to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _proteins(n: int, seed: int = 0, min_len: int = 3, max_len: int = 20) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    return [
        (f"p{i}", "".join(rng.choice(list(AMINO), size=int(rng.integers(min_len, max_len + 1)))))
        for i in range(n)
    ]


def _adapter(**options) -> EsmcAdapter:
    return EsmcAdapter(_tiny(), **options)


# -- factory -----------------------------------------------------------------------------------


def test_factory_sources_and_errors(tmp_path: Path):
    assert get_registry().get("adapter", "esmc").source == "built-in"
    tiny = create("adapter", "esmc", model_name="tiny")
    assert isinstance(tiny, EsmcAdapter) and tiny.max_length == ESMC_MAX_LENGTH
    with pytest.raises(ConfigError, match=r"needs model= .* or name="):
        create("adapter", "esmc")
    with pytest.raises(ConfigError, match=r"random_init=True"):
        create("adapter", "esmc", model_name="esmc_300m")
    with pytest.raises(ConfigError, match=r"not both"):
        create("adapter", "esmc", model_name="esmc_300m", weights=tmp_path / "w.pth", hf_cache=True)
    with pytest.raises(ConfigError, match=r"not both"):
        create("adapter", "esmc", model=build_esmc("tiny"), model_name="tiny")
    with pytest.raises(ConfigError, match=r"disagree"):
        get_registry().get("adapter", "esmc").factory(name="tiny", model_name="esmc_300m")
    with pytest.raises(ConfigError, match=r"unknown ESM-C model 'tinny'"):
        create("adapter", "esmc", model_name="tinny")
    with pytest.raises(FileNotFoundError, match=r"never downloads"):
        create("adapter", "esmc", model_name="tiny", weights=tmp_path / "absent.pth")
    with pytest.raises(ConfigError, match=r"needs an esm.models.esmc.ESMC"):
        EsmcAdapter(torch.nn.Linear(2, 2))


def test_weights_round_trip_through_the_factory_and_score(tmp_path: Path):
    original = _tiny(seed=2, dtype=torch.float32)
    path = tmp_path / "esmc_tiny.pth"
    torch.save(original.state_dict(), path)
    records = _proteins(6, seed=1)
    opts = dict(curvature="identity", batch_size=3, seed=1, engine="auto", progress=False)
    want = score(EsmcAdapter(original.to(torch.float64)), records, **opts)
    by_name = score(
        None,
        records,
        adapter="esmc",
        adapter_options={"name": "tiny", "weights": path, "dtype": "float64"},
        **opts,
    )
    # invariant: the adapter built by name is the one built by hand (two runs: to rounding)
    assert_equal_to_rounding(by_name.scores, want.scores)
    assert by_name.metadata["adapter"] == "esmc"


def test_prefilled_hf_cache_through_the_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(
        esmc_model.ESMC_CONFIGS, "esmc_300m", esmc_model.ESMC_CONFIGS["tiny"]
    )  # tiny stand-in
    source = _tiny(seed=5, dtype=torch.float32)
    repo_id, filename = ESMC_HF_WEIGHTS["esmc_300m"]
    repo = tmp_path / "hub" / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    torch.save(source.state_dict(), target)
    adapter = create(
        "adapter", "esmc", model_name="esmc_300m", hf_cache=True, cache_dir=tmp_path / "hub"
    )
    for a, b in zip(adapter.model.state_dict().values(), source.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match=r"does not download"):
        create("adapter", "esmc", model_name="esmc_600m", hf_cache=True, cache_dir=tmp_path / "hub")


# -- alphabet and hygiene ------------------------------------------------------------------------


def test_tokens_logits_and_protein_alphabet():
    adapter = _adapter()
    tok = esmc_tokenizer()
    seq = "MKTAYIAKQRBUZOX"
    assert adapter.encode("p", seq)[0] == tok(seq)["input_ids"]
    assert adapter.encode("p", "mkt")[0] == adapter.encode("p", "MKT")[0]  # lower case; T stays T
    assert set(AMINO) | set("XBUZO") <= adapter.alphabet
    assert adapter.random_token_ids == [tok.convert_tokens_to_ids(c) for c in AMINO]
    batch = adapter.collate([("a", "MKTAYI"), ("b", "MK")], seed=0)
    assert adapter.logits(batch.input_ids, batch.attention_mask).shape == (2, 8, 33)


def test_invalid_letters_name_record_and_position():
    adapter = _adapter()
    with pytest.raises(
        InputError, match=r"record 'q': residue 3 is '1', which is not in ESM-C's alphabet"
    ):
        adapter.collate([("p", "MKV"), ("q", "MK1V")], seed=0)
    x = _adapter(invalid="X")
    assert x.encode("q", "MK1V")[0][3] == esmc_tokenizer().convert_tokens_to_ids("X")
    x.collate([("q", "MK1V")], seed=0)
    assert dict(x.stats) == {"replaced_records": 1, "replaced_letters": 1}
    unk = _adapter(invalid="unk")
    assert unk.encode("q", "MK1V")[0][3] == esmc_tokenizer().unk_token_id
    with pytest.raises(InputError, match=r"record 'e': empty sequence"):
        adapter.collate([("e", "")], seed=0)


def test_long_sequences():
    seq = "MKTAYIAKQR" * 3
    trunc = _adapter(max_length=12)
    assert (
        trunc.collate([("p", seq)], seed=0).lengths.tolist() == [12]
        and trunc.stats["truncated"] == 1
    )
    with pytest.raises(InputError, match=r"record 'p': 30 residues exceeds the model limit of 12"):
        _adapter(max_length=12, long_policy="error").collate([("p", seq)], seed=0)
    win = _adapter(max_length=12, long_policy="windows")
    batch = win.collate([("p", seq), ("q", "MK")], seed=0)
    with torch.no_grad():
        out = win.logits(batch.input_ids, batch.attention_mask)
        chunk = batch.input_ids[0, 13:25]
        ids = torch.cat([torch.tensor([0]), chunk, torch.tensor([2])]).unsqueeze(0)
        torch.testing.assert_close(
            out[0, 13:25], win.model_logits(ids, torch.ones_like(ids))[0, 1:-1], rtol=0, atol=1e-12
        )


# -- parameter scope and exact scores ----------------------------------------------------------


def test_parameter_groups_are_readable_and_complete():
    adapter = _adapter()
    groups = adapter.parameter_groups()
    assert list(groups) == [
        "embeddings",
        "layer 0 attention",
        "layer 0 ffn",
        "layer 1 attention",
        "layer 1 ffn",
        "final norm",
        "lm head",
    ]
    assert groups["embeddings"] == ["embed.weight"]
    assert "transformer.blocks.1.attn.q_ln.weight" in groups["layer 1 attention"]  # bias-free norm
    assert groups["final norm"] == ["transformer.norm.weight"]
    assert all(n.startswith("sequence_head.") for n in groups["lm head"])
    names = sorted(n for members in groups.values() for n in members)
    assert names == sorted(n for n, _ in adapter.model.named_parameters())
    assert adapter.unused_parameters() == []
    assert set(adapter.scored_parameters(["last:1"])) == set(
        groups["layer 1 attention"] + groups["layer 1 ffn"]
    )


@pytest.mark.parametrize("engine", ["loop", "auto"])
def test_diagonal_scores_equal_bruteforce(engine):
    adapter = _adapter()
    records = _proteins(7, seed=3)
    result = score(adapter, records, subset=4, batch_size=4, seed=7, engine=engine, progress=False)
    rows = [result.ids.index(i) for i in result.metadata["subset_ids"]]
    grads = per_sample_grads(adapter, records, list(adapter.scored_parameters()), seed=7)
    expected = diagonal_scores(grads, rows, result.metadata["damping"]).numpy()
    np.testing.assert_allclose(result.scores, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("engine", ["loop", "auto"])
def test_identity_scores_with_windows_equal_bruteforce(engine):
    adapter = _adapter(max_length=8, long_policy="windows")
    records = _proteins(6, seed=4, max_len=24)
    result = score(
        adapter, records, curvature="identity", batch_size=3, engine=engine, progress=False
    )
    grads = per_sample_grads(adapter, records, list(adapter.scored_parameters()))
    np.testing.assert_allclose(result.scores, grads.pow(2).sum(1).numpy(), rtol=1e-6)
    assert result.metadata["adapter_stats"]["windowed"] > 0
