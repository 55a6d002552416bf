"""The ``rna-fm`` adapter: factory, hygiene, long sequences, parameter scope, exact scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from biocoreset import score
from biocoreset.adapters.rnafm import RnaFmAdapter
from biocoreset.adapters.rnafm_checkpoint import save_rnafm_checkpoint
from biocoreset.adapters.rnafm_model import (
    RNAFM_MASK_ID,
    RNAFM_UNK_ID,
    build_rnafm,
    rnafm_tokenizer,
)
from biocoreset.data.hygiene import SkipRecord
from biocoreset.errors import ConfigError, InputError
from biocoreset.plugins import create, get_registry
from biocoreset.testing import random_rna, tiny_esm
from floats import assert_equal_to_rounding
from reference import diagonal_scores, per_sample_grads

N_ID = 18


def _tiny(seed: int = 0, dtype: torch.dtype = torch.float64):
    torch.manual_seed(seed)
    model = build_rnafm("tiny").to(dtype)
    with torch.no_grad():  # non-zero biases and norms so every parameter matters
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def _adapter(**options) -> RnaFmAdapter:
    return RnaFmAdapter(_tiny(), **options)


# -- factory -----------------------------------------------------------------------------------


def test_registered_with_a_description():
    component = get_registry().get("adapter", "rna-fm")
    assert "RNA-FM" in component.description and component.source == "built-in"


def test_factory_needs_exactly_one_model_source(tmp_path):
    with pytest.raises(ConfigError, match=r"exactly one of model=.*got none"):
        create("adapter", "rna-fm")
    with pytest.raises(ConfigError, match=r"got model, size"):
        create("adapter", "rna-fm", model=build_rnafm("tiny"), size="tiny")
    with pytest.raises(ConfigError, match=r"unknown RNA-FM size 'tiyn'.*Did you mean 'tiny'"):
        create("adapter", "rna-fm", size="tiyn")
    with pytest.raises(FileNotFoundError, match=r"never downloads"):
        create("adapter", "rna-fm", checkpoint=tmp_path / "RNA-FM_pretrained.pth")
    with pytest.raises(ConfigError, match=r"dtype must be"):
        create("adapter", "rna-fm", size="tiny", dtype="float128")


def test_rejects_models_that_are_not_rna_fm_shaped():
    with pytest.raises(ConfigError, match=r"RNA-FM-shaped.*vocab_size=10.*'hf' adapter"):
        RnaFmAdapter(tiny_esm()[0])
    with pytest.raises(ConfigError, match=r"not over the RNA-FM alphabet"):
        RnaFmAdapter(build_rnafm("tiny"), tiny_esm()[1])


def test_tiny_by_size_and_real_size_limit():
    adapter = create("adapter", "rna-fm", size="tiny", dtype="float64")
    assert isinstance(adapter, RnaFmAdapter) and adapter.name == "rna-fm"
    assert adapter.model.dtype == torch.float64
    assert adapter.max_length == 1022  # 1,024 positions less <cls>/<eos>
    assert adapter.family == "rna-fm"
    assert (adapter.mask_token_id, adapter.pad_token_id) == (RNAFM_MASK_ID, 1)
    assert adapter.random_token_ids == [4, 5, 6, 7]


def test_checkpoint_round_trip_through_the_factory_and_score(tmp_path):
    """An official-format file written here, loaded by the factory, scores like the original."""
    original = _tiny(seed=3, dtype=torch.float32)
    with torch.no_grad():  # as fm's loader leaves it
        original.esm.embeddings.word_embeddings.weight[RNAFM_MASK_ID] = 0
    path = save_rnafm_checkpoint(original, tmp_path / "RNA-FM_pretrained.pth")
    records = random_rna(8, seed=1, min_len=4, max_len=24)

    loaded = create("adapter", "rna-fm", checkpoint=path, dtype="float64")
    direct = RnaFmAdapter(original.to(torch.float64))
    for a, b in zip(
        loaded.model.state_dict().values(), direct.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    opts = dict(curvature="identity", batch_size=4, seed=2, engine="auto", progress=False)
    got = score(loaded, records, **opts)
    want = score(direct, records, **opts)
    # invariant: the saved checkpoint loads the same model (two runs: to float64 rounding)
    assert_equal_to_rounding(got.scores, want.scores)

    # score() builds the same adapter by name from adapter_options
    by_name = score(
        None,
        records,
        adapter="rna-fm",
        adapter_options={"checkpoint": path, "dtype": "float64"},
        **opts,
    )
    assert_equal_to_rounding(by_name.scores, want.scores)
    assert by_name.metadata["adapter"] == "rna-fm"


def test_checkpoint_mask_row_option(tmp_path):
    model = _tiny(seed=4, dtype=torch.float32)
    path = save_rnafm_checkpoint(model, tmp_path / "ckpt.pth")
    zeroed = create("adapter", "rna-fm", checkpoint=path)
    raw = create("adapter", "rna-fm", checkpoint=path, zero_mask_embedding=False)
    row = lambda a: a.model.esm.embeddings.word_embeddings.weight[RNAFM_MASK_ID]  # noqa: E731
    assert row(zeroed).abs().sum() == 0 and row(raw).abs().sum() > 0


# -- tokenisation and hygiene ------------------------------------------------------------------


def test_encode_matches_the_rnafm_tokenizer():
    adapter = _adapter()
    tok = rnafm_tokenizer()
    for seq in ["ACGU", "GGNRYKMSWBDHV-A", "U"]:
        ids, maskable = adapter.encode("r", seq)
        assert ids == tok(seq)["input_ids"]
        assert maskable == [False, *([True] * len(seq)), False]


def test_t_to_u_and_lower_case_are_accepted_and_counted():
    adapter = _adapter()
    assert adapter.encode("r", "acgt")[0] == adapter.encode("r", "ACGU")[0]
    batch = adapter.collate([("a", "acgu"), ("b", "ACGT"), ("c", "ACGU")], seed=0)
    assert batch.ids == ("a", "b", "c")
    assert adapter.stats["lowercase_records"] == 1 and adapter.stats["t_to_u_records"] == 1


def test_invalid_letter_error_names_record_and_position():
    adapter = _adapter()
    with pytest.raises(
        InputError, match=r"record 'r2': residue 4 is 'Z'.*RNA-FM's alphabet.*2 invalid letters"
    ):
        adapter.collate([("r1", "ACGU"), ("r2", "acgZuX")], seed=0)
    with pytest.raises(InputError, match=r"record 'r3': residue 1 is '\*'"):
        adapter.encode("r3", "*A")


@pytest.mark.parametrize("policy", ["unk", "replace", "N", "skip"])
def test_invalid_policies_with_counts(policy):
    adapter = _adapter(invalid=policy)
    records = [("ok", "ACGU"), ("bad", "AZGXU")]
    batch = adapter.collate(records, seed=0)
    if policy == "skip":
        assert batch.ids == ("ok",)
        assert dict(adapter.stats) == {"skipped_records": 1}
        with pytest.raises(SkipRecord, match=r"record 'bad': residue 2"):
            adapter.encode("bad", "AZGXU")
        with pytest.raises(InputError, match=r"all 1 records of the batch were skipped"):
            adapter.collate([("bad", "AZ")], seed=0)
        return
    assert batch.ids == ("ok", "bad")
    ids = adapter.encode("bad", "AZGXU")[0]
    if policy == "unk":
        assert ids == [0, 4, RNAFM_UNK_ID, 6, RNAFM_UNK_ID, 7, 2]
        assert dict(adapter.stats) == {"unknown_records": 1, "unknown_letters": 2}
    else:
        assert ids == [0, 4, N_ID, 6, N_ID, 7, 2]
        assert dict(adapter.stats) == {"replaced_records": 1, "replaced_letters": 2}
    # the substituted positions are residues: they can be masked and count in the loss
    assert sum(adapter.encode("bad", "AZGXU")[1]) == 5


def test_bad_policy_and_replacement_are_config_errors():
    with pytest.raises(ConfigError, match=r"invalid must be one of"):
        _adapter(invalid="drop")
    with pytest.raises(ConfigError, match=r"replacement letter 'Z' is not in RNA-FM's alphabet"):
        _adapter(invalid="replace", replacement="Z")


@pytest.mark.parametrize("policy", ["error", "unk", "replace", "skip"])
def test_empty_sequence_is_rejected_by_id_under_every_policy(policy):
    adapter = _adapter(invalid=policy)
    with pytest.raises(InputError, match=r"record 'e1': empty sequence"):
        adapter.collate([("ok", "ACGU"), ("e1", "")], seed=0)


def test_pipeline_validation_uses_the_adapter_alphabet_and_hook():
    adapter = _adapter()
    assert adapter.alphabet == frozenset("ACGURYKMSWBDHVN-")
    assert adapter.validate("r", "acgt") == "acgu"  # the validator upper-cases (and counts) itself
    records = [("a", "acgtacgu"), ("b", "ACGZACGU"), ("c", "GGGCCCAU")]
    with pytest.raises(InputError, match=r"record 'b'.*residue 4 is 'Z'"):
        score(adapter, records, scorer="loss")
    replaced = score(adapter, records, scorer="loss", invalid="replace")
    assert replaced.metadata["validation"]["replaced_letters"] == 1
    assert replaced.metadata["validation"]["uppercased_records"] == 1
    skipped = score(adapter, records, scorer="loss", invalid="skip")
    assert skipped.ids == ["a", "c"]
    # T→U then upper-casing gives the same loss as the clean sequence (a batch of two against a
    # batch of one: equal up to float64 rounding, which depends on the batch shape and threads)
    clean = score(adapter, [("a", "ACGUACGU")], scorer="loss")
    assert skipped.loss[0] == pytest.approx(clean.loss[0], rel=1e-12, abs=0)


def test_adapter_policies_through_score():
    records = [("a", "ACGUACGU"), ("b", "ACGZACGU")]
    unk = _adapter(invalid="unk")
    assert unk.alphabet is None  # the adapter handles letters itself
    result = score(unk, records, scorer="loss")
    assert result.ids == ["a", "b"] and result.metadata["adapter_stats"]["unknown_letters"] == 1
    # the curvature fit tokenises D_sub again; the counts are of the scoring pass, once per record
    fitted = score(_adapter(invalid="unk"), records, subset=2, batch_size=2, progress=False)
    assert fitted.metadata["adapter_stats"]["unknown_letters"] == 1
    skip = _adapter(invalid="skip")
    with pytest.raises(SkipRecord, match=r"record 'b': residue 4 is 'Z'.*dropped"):
        skip.validate("b", "ACGZACGU")  # the pipeline validator drops records that raise this
    dropped = score(skip, records, scorer="loss")
    assert dropped.ids == ["a"] and dropped.metadata["validation"]["skipped_invalid"] == 1


# -- long sequences ----------------------------------------------------------------------------


def test_long_policy_truncate_error_and_windows():
    long_seq = "ACGU" * 260  # 1,040 residues > 1,022
    trunc = _adapter()
    batch = trunc.collate([("long", long_seq), ("short", "ACG")], seed=0)
    assert batch.lengths.tolist() == [1022, 3] and batch.input_ids.shape[1] == 1024
    assert batch.input_ids[0, 1023] == 2  # <eos> kept after the last kept residue
    assert trunc.stats["truncated"] == 1
    with pytest.raises(
        InputError, match=r"record 'long': 1040 residues exceeds the model limit of 1022"
    ):
        _adapter(long_policy="error").collate([("long", long_seq)], seed=0)
    win = _adapter(long_policy="windows")
    batch = win.collate([("long", long_seq), ("short", "ACG")], seed=0)
    assert batch.lengths.tolist() == [1040, 3] and win.stats["windowed"] == 1
    loss = win.per_sample_loss(batch)
    assert torch.isfinite(loss).all()
    with pytest.raises(ConfigError, match=r"long_policy must be one of"):
        _adapter(long_policy="sliding")
    with pytest.raises(ConfigError, match=r"windows.*masked"):
        _adapter(long_policy="windows", loss_mode="paper-compat")


def test_windows_predict_each_residue_within_its_window():
    adapter = _adapter(long_policy="windows", max_length=8)
    seq = "ACGUAGGCUUACGAUCCGAU"  # 20 residues: windows of 8, 8, 4
    batch = adapter.collate([("x", seq), ("y", "GGA")], seed=0)
    with torch.no_grad():
        out = adapter.logits(batch.input_ids, batch.attention_mask)
        for start in (0, 8, 16):
            chunk = batch.input_ids[0, 1 + start : 1 + min(start + 8, 20)]
            ids = torch.cat([torch.tensor([0]), chunk, torch.tensor([2])]).unsqueeze(0)
            ref = adapter.model_logits(ids, torch.ones_like(ids))[0, 1:-1]
            torch.testing.assert_close(
                out[0, 1 + start : 1 + start + len(chunk)], ref, rtol=0, atol=1e-12
            )
        short = adapter.model_logits(batch.input_ids[1:, :5], batch.attention_mask[1:, :5])
        torch.testing.assert_close(out[1, 1:4], short[0, 1:4], rtol=0, atol=1e-12)


# -- parameter scope and exact scores ----------------------------------------------------------


def test_parameter_groups_cover_every_used_parameter_once():
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
    names = [n for members in groups.values() for n in members]
    assert sorted(names) == sorted(adapter.scored_parameters())
    assert len(names) == len(set(names))
    assert "esm.embeddings.word_embeddings.weight" in groups["embeddings"]  # tied with the decoder
    assert "lm_head.bias" in groups["lm head"]
    assert set(adapter.unused_parameters()) == {
        "esm.contact_head.regression.weight",
        "esm.contact_head.regression.bias",
    }
    last = adapter.scored_parameters(["last:1"])
    assert set(last) == set(groups["layer 1 attention"] + groups["layer 1 ffn"])
    both = adapter.scored_parameters(["last:1", "lm head"])
    assert set(both) == set(last) | set(groups["lm head"])
    with pytest.raises(ConfigError, match=r"'last:3'.*from 1 to the number of layers \(2\)"):
        adapter.scored_parameters(["last:3"])


@pytest.mark.parametrize("engine", ["loop", "auto"])
@pytest.mark.parametrize("long_policy", ["truncate", "windows"])
def test_diagonal_scores_equal_bruteforce(engine, long_policy):
    adapter = _adapter(long_policy=long_policy, max_length=12)
    records = random_rna(7, seed=3, min_len=3, max_len=30)  # some longer than 12
    result = score(adapter, records, subset=4, batch_size=4, seed=7, engine=engine, progress=False)
    assert (
        result.metadata["adapter_stats"]["truncated" if long_policy == "truncate" else "windowed"]
        > 0
    )
    rows = [result.ids.index(i) for i in result.metadata["subset_ids"]]
    grads = per_sample_grads(adapter, records, list(adapter.scored_parameters()), seed=7)
    expected = diagonal_scores(grads, rows, result.metadata["damping"]).numpy()
    np.testing.assert_allclose(result.scores, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("engine", ["loop", "auto"])
def test_identity_scores_of_the_last_layer_equal_bruteforce(engine):
    adapter = _adapter()
    records = random_rna(7, seed=5, min_len=2, max_len=20)
    result = score(
        adapter,
        records,
        curvature="identity",
        parameters=["last:1"],
        batch_size=4,
        engine=engine,
        progress=False,
    )
    names = list(adapter.scored_parameters(["last:1"]))
    grads = per_sample_grads(adapter, records, names)
    np.testing.assert_allclose(result.scores, grads.pow(2).sum(1).numpy(), rtol=1e-6)
    assert result.metadata["num_scored_parameters"] == sum(
        p.numel() for p in adapter.scored_parameters(["last:1"]).values()
    )
