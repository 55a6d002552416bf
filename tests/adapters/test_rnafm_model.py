"""RNA-FM as EsmForMaskedLM: checkpoint conversion checked against the ``fm`` package itself."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import pytest
import torch

from biocoreset.adapters.rnafm_checkpoint import (
    RnaFmCheckpointError,
    convert_rnafm_state_dict,
    load_rnafm_checkpoint,
    save_rnafm_checkpoint,
)
from biocoreset.adapters.rnafm_model import (
    RNAFM_MASK_ID,
    RNAFM_PAD_ID,
    RNAFM_TOKENS,
    build_rnafm,
    rnafm_config,
    rnafm_tokenizer,
)
from biocoreset.errors import ConfigError

try:
    import fm
except ImportError:  # the library itself never needs fm; only the parity checks do
    fm = None
needs_fm = pytest.mark.skipif(fm is None, reason="the rna-fm package (module fm) is not installed")

TINY = dict(layers=2, embed_dim=32, ffn_embed_dim=64, attention_heads=4)
SEQS = ["ACGUNNAGGCUA", "AC", "GGGUUUAAACCCRYKM-", "U"]


def _alphabet():
    return fm.Alphabet.from_architecture("roberta_large", theme="rna")


def _fm_model(seed: int = 0, **args) -> fm.BioBertModel:
    """A tiny random fm.BioBertModel with every parameter (biases, norms) perturbed."""
    torch.manual_seed(seed)
    ns = argparse.Namespace(
        arch="roberta_large", max_positions=1024, emb_layer_norm_before=True, **{**TINY, **args}
    )
    model = fm.BioBertModel(ns, _alphabet()).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _official(model: fm.BioBertModel) -> dict[str, torch.Tensor]:
    """fm model state dict -> the keys of RNA-FM_pretrained.pth."""
    return {
        ("encoder." if k.startswith("lm_head.") else "encoder.sentence_encoder.") + k: v
        for k, v in model.state_dict().items()
    }


# fm-free copy of _tokens(): <cls> ... <eos> <pad>, with <mask> at a few places
_TOKENS = torch.tensor(
    [
        [0, 4, 5, RNAFM_MASK_ID, 7, 18, 18, RNAFM_MASK_ID, 6, 5, 7, 2],
        [0, 4, 5, 2, 1, 1, 1, 1, 1, 1, 1, 1],
        [0, 6, 6, 6, 7, RNAFM_MASK_ID, 7, 4, 4, 8, 9, 2],
    ]
)


def _tokens() -> torch.Tensor:
    """fm's batch converter output, with a few <mask> tokens as in MLM."""
    _, _, toks = _alphabet().get_batch_converter()([(str(i), s) for i, s in enumerate(SEQS)])
    toks[0, 3] = toks[0, 7] = toks[2, 5] = RNAFM_MASK_ID
    return toks


def _perturbed_tiny(seed: int):
    torch.manual_seed(seed)
    model = build_rnafm("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _official_tiny(tmp_path: Path) -> dict[str, torch.Tensor]:
    """The official-format state dict of a tiny model, as written by save_rnafm_checkpoint."""
    path = save_rnafm_checkpoint(_perturbed_tiny(3), tmp_path / "official.pth")
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, weights_only=True)["model"]


def _hf_logits(model, toks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=toks, attention_mask=toks.ne(RNAFM_PAD_ID).long()).logits


def _fm_logits(model, toks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(toks)["logits"]


def _assert_close_on_tokens(a: torch.Tensor, b: torch.Tensor, toks: torch.Tensor) -> None:
    keep = toks.ne(RNAFM_PAD_ID)  # padded query rows are not defined identically
    torch.testing.assert_close(a[keep], b[keep], rtol=0, atol=1e-5)


@needs_fm
def test_alphabet_matches_fm():
    assert list(RNAFM_TOKENS) == _alphabet().all_toks
    alphabet = _alphabet()
    assert (alphabet.padding_idx, alphabet.mask_idx) == (RNAFM_PAD_ID, RNAFM_MASK_ID)


def test_config_presets_and_overrides():
    cfg = rnafm_config()
    assert (
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.intermediate_size,
        cfg.num_attention_heads,
    ) == (12, 640, 5120, 20)
    assert cfg.vocab_size == 25 and cfg.max_position_embeddings == 1026
    assert (
        cfg.position_embedding_type == "absolute"
        and cfg.emb_layer_norm_before
        and not cfg.token_dropout
    )
    assert cfg._attn_implementation == "sdpa"  # fused attention where transformers has it
    assert rnafm_config(attn_implementation="eager")._attn_implementation == "eager"
    with pytest.raises(ConfigError, match="sdpa"):
        rnafm_config(attn_implementation="sdp")
    assert rnafm_config("tiny").num_hidden_layers == 2
    assert rnafm_config({"num_hidden_layers": 3}).hidden_size == 640
    assert rnafm_config("tiny", hidden_size=48).hidden_size == 48
    with pytest.raises(ConfigError, match="tiny"):
        rnafm_config("tinny")


@needs_fm
def test_full_size_parameter_count_matches_fm():
    with torch.device("meta"):
        ours = build_rnafm("rna-fm")
        theirs = fm.BioBertModel(
            argparse.Namespace(
                arch="roberta_large",
                layers=12,
                embed_dim=640,
                ffn_embed_dim=5120,
                attention_heads=20,
                max_positions=1024,
                emb_layer_norm_before=True,
            ),
            _alphabet(),
        )
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in theirs.parameters())
    assert round(n_ours / 1e6, 1) == 99.5


def test_build_is_eval_sdpa_and_tied():
    model = build_rnafm("tiny")
    assert not model.training
    assert model.config._attn_implementation == "sdpa"
    assert build_rnafm("tiny", attn_implementation="eager").config._attn_implementation == "eager"
    assert model.lm_head.decoder.weight is model.esm.embeddings.word_embeddings.weight
    # For per-sample gradient hooks: the one parameter outside Linear / Embedding / LayerNorm.
    hookable = (torch.nn.Linear, torch.nn.Embedding, torch.nn.LayerNorm)
    others = {
        f"{mn}.{pn}"
        for mn, m in model.named_modules()
        if not isinstance(m, hookable)
        for pn, _ in m.named_parameters(recurse=False)
    }
    assert others == {"lm_head.bias"}


@needs_fm
@pytest.mark.parametrize("token_dropout", [False, True])
@pytest.mark.parametrize("fairseq_names", [False, True])
def test_checkpoint_logits_match_fm(tmp_path: Path, token_dropout: bool, fairseq_names: bool):
    ref = _fm_model(token_dropout=token_dropout)
    args = vars(ref.args).copy()
    if fairseq_names:  # real fairseq checkpoints say encoder_layers, encoder_embed_dim, ...
        args = {(f"encoder_{k}" if k in TINY else k): v for k, v in args.items()}
    path = tmp_path / "RNA-FM_pretrained.pth"
    torch.save({"args": argparse.Namespace(**args), "model": _official(ref)}, path)
    toks = _tokens()

    raw = load_rnafm_checkpoint(path, zero_mask_embedding=False)
    assert raw.config.token_dropout is token_dropout
    _assert_close_on_tokens(_hf_logits(raw, toks), _fm_logits(ref, toks), toks)

    # Default: zero the <mask> row like fm's own loader, and match that loader.
    fm_loaded, _ = fm.pretrained.load_model_and_alphabet_core(
        "rna-fm", {"args": argparse.Namespace(**args), "model": _official(ref)}, theme="rna"
    )
    zeroed = load_rnafm_checkpoint(path)
    _assert_close_on_tokens(_hf_logits(zeroed, toks), _fm_logits(fm_loaded.eval(), toks), toks)
    assert zeroed.esm.embeddings.word_embeddings.weight[RNAFM_MASK_ID].abs().sum() == 0


def test_mask_row_zeroing_matters(tmp_path: Path):
    """With a non-zero <mask> row, zeroing it changes the logits of masked inputs."""
    path = save_rnafm_checkpoint(_perturbed_tiny(4), tmp_path / "ckpt.pth")
    raw = load_rnafm_checkpoint(path, zero_mask_embedding=False)
    zeroed = load_rnafm_checkpoint(path)
    assert raw.esm.embeddings.word_embeddings.weight[RNAFM_MASK_ID].abs().sum() > 0
    assert zeroed.lm_head.decoder.weight[RNAFM_MASK_ID].abs().sum() == 0  # tied: both zeroed
    toks = _TOKENS
    assert not torch.allclose(_hf_logits(raw, toks), _hf_logits(zeroed, toks), atol=1e-3)
    no_mask = toks.masked_fill(
        toks.eq(RNAFM_MASK_ID), 4
    )  # same logits apart from the <mask> column
    keep = no_mask.ne(RNAFM_PAD_ID)
    a, b = _hf_logits(raw, no_mask)[keep], _hf_logits(zeroed, no_mask)[keep]
    torch.testing.assert_close(a[:, :RNAFM_MASK_ID], b[:, :RNAFM_MASK_ID], rtol=0, atol=0)


def test_sdpa_equals_eager_in_float64():
    """sdpa changes no logit and no per-sample gradient beyond float64 round-off."""
    sdpa = _perturbed_tiny(5).double()
    eager = build_rnafm("tiny", attn_implementation="eager").double()
    eager.load_state_dict(sdpa.state_dict())
    toks = _TOKENS
    a, b = _hf_logits(sdpa, toks), _hf_logits(eager, toks)
    keep = toks.ne(RNAFM_PAD_ID)
    torch.testing.assert_close(a[keep], b[keep], rtol=1e-12, atol=1e-12)
    grads = []
    for model in (sdpa, eager):
        logits = model(input_ids=toks, attention_mask=toks.ne(RNAFM_PAD_ID).long()).logits
        loss = logits[keep].logsumexp(-1).sum()
        got = torch.autograd.grad(
            loss, list(model.parameters()), allow_unused=True, materialize_grads=True
        )
        grads.append(torch.cat([g.flatten() for g in got]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


def test_save_load_round_trip(tmp_path: Path):
    model = _perturbed_tiny(1)
    path = save_rnafm_checkpoint(model, tmp_path / "ckpt.pth")
    back = load_rnafm_checkpoint(path, zero_mask_embedding=False)
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    toks = _TOKENS
    torch.testing.assert_close(_hf_logits(back, toks), _hf_logits(model, toks), rtol=0, atol=0)
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    assert all(
        k.startswith(("encoder.sentence_encoder.", "encoder.lm_head.")) for k in data["model"]
    )
    assert vars(data["args"])["layers"] == 2 and vars(data["args"])["max_positions"] == 1024


@needs_fm
def test_fm_reads_our_file(tmp_path: Path):
    path = save_rnafm_checkpoint(_perturbed_tiny(1), tmp_path / "ckpt.pth")
    with torch.serialization.safe_globals([argparse.Namespace]):
        data = torch.load(path, weights_only=True)
    fm_model, _ = fm.pretrained.load_model_and_alphabet_core("rna-fm", data, theme="rna")
    toks = _tokens()
    _assert_close_on_tokens(
        _hf_logits(load_rnafm_checkpoint(path), toks), _fm_logits(fm_model.eval(), toks), toks
    )


def test_missing_file_is_a_clear_error_not_a_download(tmp_path: Path):
    missing = tmp_path / "nope" / "RNA-FM_pretrained.pth"
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_rnafm_checkpoint(missing)


def test_namespace_allowance_is_scoped_and_other_globals_rejected(tmp_path: Path):
    path = tmp_path / "evil.pth"
    torch.save({"args": argparse.Namespace(), "model": {}, "x": datetime.date(2020, 1, 1)}, path)
    with pytest.raises(RnaFmCheckpointError, match="not a readable"):
        load_rnafm_checkpoint(path)
    assert argparse.Namespace not in torch.serialization.get_safe_globals()


def test_plain_state_dict_file_is_rejected(tmp_path: Path):
    path = tmp_path / "plain.pth"
    torch.save(build_rnafm("tiny").state_dict(), path)
    with pytest.raises(RnaFmCheckpointError, match="official RNA-FM format"):
        load_rnafm_checkpoint(path)


def test_convert_names_unknown_and_missing_keys(tmp_path: Path):
    official = _official_tiny(tmp_path)
    with pytest.raises(
        RnaFmCheckpointError, match=r"unexpected.*'encoder\.sentence_encoder\.version'"
    ):
        convert_rnafm_state_dict({**official, "encoder.sentence_encoder.version": torch.zeros(1)})
    partial = dict(official)
    del partial["encoder.sentence_encoder.layers.1.fc2.bias"]
    with pytest.raises(RnaFmCheckpointError, match=r"missing.*layers\.1\.fc2\.bias"):
        convert_rnafm_state_dict(partial)
    untied = {**official, "encoder.lm_head.weight": official["encoder.lm_head.weight"] + 1}
    with pytest.raises(RnaFmCheckpointError, match="ties"):
        convert_rnafm_state_dict(untied)
    assert issubclass(RnaFmCheckpointError, ValueError)


@needs_fm
def test_convert_accepts_unprefixed_fm_keys_and_one_tied_name():
    ref = _fm_model()
    sd = dict(ref.state_dict())
    del sd["lm_head.weight"]
    state = convert_rnafm_state_dict(sd)
    assert state["lm_head.decoder.weight"] is state["esm.embeddings.word_embeddings.weight"]
    build_rnafm("tiny").load_state_dict(state, strict=True)


@needs_fm
def test_tokenizer_ids_equal_fm_batch_converter():
    seqs = ["ACGU", "ACGTNRY-ac", "ACG U", "XYZ", "GGGGGGGGGGGGGGGGGGGGCU", "BDHVN-SWKM"]
    _, _, expected = _alphabet().get_batch_converter()([(str(i), s) for i, s in enumerate(seqs)])
    tok = rnafm_tokenizer()
    enc = tok(seqs, padding=True, return_tensors="pt")
    # exact: token ids
    assert torch.equal(enc["input_ids"], expected)
    assert torch.equal(enc["attention_mask"].bool(), expected.ne(RNAFM_PAD_ID))
    assert (
        tok.pad_token_id,
        tok.mask_token_id,
        tok.cls_token_id,
        tok.eos_token_id,
        tok.unk_token_id,
    ) == (1, 24, 0, 2, 3)
    assert len(tok) == 25


def test_tokenizer_save_pretrained_round_trip(tmp_path: Path):
    from transformers import EsmTokenizer

    tok = rnafm_tokenizer()
    tok.save_pretrained(tmp_path)
    again = EsmTokenizer.from_pretrained(tmp_path)
    assert again.convert_ids_to_tokens(list(range(25))) == list(RNAFM_TOKENS)
