"""The ``hf`` adapter recognises ESM-2, ESM-1b/RNA-FM, BERT-style and multimolecule-style models."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    EsmConfig,
    EsmForMaskedLM,
    PretrainedConfig,
    RobertaConfig,
    RobertaForMaskedLM,
)

from biocoreset import hookimpl, score
from biocoreset.adapters.hf import HFAdapter
from biocoreset.adapters.hf_families import (
    BUILTIN_FAMILIES,
    ESM_PROTEIN_TOKENS,
    ModelFamily,
    detect_family,
    esm_protein_tokenizer,
    families,
)
from biocoreset.adapters.rnafm_model import build_rnafm
from biocoreset.errors import ConfigError, PluginError
from biocoreset.plugins import manager
from biocoreset.testing import random_rna, tiny_bert, tiny_esm

TINY = dict(
    hidden_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=32,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def _esm2() -> EsmForMaskedLM:
    config = EsmConfig(
        vocab_size=33,
        pad_token_id=1,
        mask_token_id=32,
        position_embedding_type="rotary",
        max_position_embeddings=1026,
        token_dropout=False,
        emb_layer_norm_before=False,
        attn_implementation="eager",
        **TINY,
    )
    torch.manual_seed(0)
    return EsmForMaskedLM(config).double().eval()


def _roberta() -> RobertaForMaskedLM:
    config = RobertaConfig(
        vocab_size=12,
        pad_token_id=1,
        max_position_embeddings=40,
        attn_implementation="eager",
        **TINY,
    )
    return RobertaForMaskedLM(config).eval()


class _MMConfig(PretrainedConfig):
    model_type = "rnafm"  # a multimolecule model_type, recognised without importing multimolecule


class _OtherConfig(PretrainedConfig):
    model_type = "somethingelse"


def test_detection_by_config():
    assert detect_family(build_rnafm("tiny")).name == "rna-fm"
    assert detect_family(_esm2()).name == "esm-2"
    assert detect_family(tiny_esm()[0]).name == "esm-1b"  # 10-token alphabet: not RNA-FM
    assert detect_family(tiny_bert()[0]).name == "bert"
    assert detect_family(_roberta()).name == "bert"
    holder = torch.nn.Module()
    holder.config = _MMConfig()
    assert detect_family(holder).name == "multimolecule"
    holder.config = _OtherConfig(architectures=["SpliceBertForMaskedLM"])
    assert detect_family(holder).name == "multimolecule"
    holder.config = _OtherConfig()
    assert detect_family(holder).name == "generic"
    assert detect_family(torch.nn.Linear(2, 2)).name == "generic"  # no config at all


def test_multimolecule_recognised_by_config_module(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(
        _OtherConfig, "__module__", "multimolecule.models.rinalmo.configuration_rinalmo"
    )
    holder = torch.nn.Module()
    holder.config = _OtherConfig()
    assert detect_family(holder).name == "multimolecule"


def test_residue_limits_follow_the_position_scheme():
    esm2 = HFAdapter(_esm2())
    assert esm2.family == "esm-2" and esm2.max_length == 1022  # 1026 - (pad 1 + 1) - <cls>/<eos>
    rnafm = HFAdapter(build_rnafm("tiny"))
    assert rnafm.family == "rna-fm" and rnafm.max_length == 1022
    bert_model, bert_tok = tiny_bert()
    assert HFAdapter(bert_model, bert_tok).max_length == 64 - 2  # [CLS] ... [SEP], positions from 0
    roberta = _roberta()
    fam = detect_family(roberta)
    assert fam.max_length(roberta, 2) == 40 - 2 - 2  # RoBERTa numbers positions from pad + 1
    esm = tiny_esm(max_positions=66)
    assert HFAdapter(*esm).max_length == 62
    assert HFAdapter(*esm, max_length=10).max_length == 10  # an explicit limit wins


def test_max_length_beyond_the_positions_is_refused_up_front():
    # it used to pass here and fail later with an IndexError deep in the embedding
    with pytest.raises(ConfigError, match=r"max_length=1024 .* at most 1022 residues"):
        HFAdapter(build_rnafm("tiny"), max_length=1024)
    esm = tiny_esm(max_positions=66)
    with pytest.raises(ConfigError, match="at most 62"):
        HFAdapter(*esm, max_length=63)
    assert HFAdapter(*esm, max_length=62).max_length == 62


def test_multimolecule_limit_is_conservative():
    model = torch.nn.Module()
    model.config = _MMConfig(max_position_embeddings=1026)
    model.embeddings = torch.nn.Module()
    model.embeddings.position_embeddings = torch.nn.Embedding(1026, 4, padding_idx=0)
    assert detect_family(model).max_length(model, 2) == 1026 - 2 - 2
    del model.embeddings
    assert detect_family(model).max_length(model, 2) == 1024  # no learned positions: only specials


def test_default_tokenizers_for_known_alphabets():
    esm2 = HFAdapter(_esm2())  # no tokenizer given: the ESM protein alphabet
    assert esm2.tokenizer.convert_ids_to_tokens(list(range(33))) == list(ESM_PROTEIN_TOKENS)
    assert esm2.encode("p", "MKV")[0] == [0, 20, 15, 7, 2]
    rnafm = HFAdapter(build_rnafm("tiny"))
    assert rnafm.encode("r", "ACGU")[0] == [0, 4, 5, 6, 7, 2]
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        HFAdapter(tiny_bert()[0])
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        HFAdapter(tiny_esm()[0])  # ESM-shaped but not a known alphabet
    assert esm_protein_tokenizer()("M K")["input_ids"] == [
        0,
        20,
        3,
        15,
        2,
    ]  # one token per character


def test_parameter_groups_per_family():
    bert = HFAdapter(*tiny_bert())
    groups = bert.parameter_groups()
    assert {"embeddings", "layer 0 attention", "layer 1 ffn", "lm head"} <= set(groups)
    assert all(n.startswith("cls.predictions.") for n in groups["lm head"])
    esm2 = HFAdapter(_esm2())
    names = [n for members in esm2.parameter_groups().values() for n in members]
    assert sorted(names) == sorted(esm2.scored_parameters())  # each used parameter once
    bert_family = next(f for f in BUILTIN_FAMILIES if f.name == "bert")
    modern = [
        "model.embeddings.tok_embeddings.weight",
        "model.layers.0.attn.Wqkv.weight",
        "model.layers.0.mlp.Wi.weight",
        "model.final_norm.weight",
        "head.dense.weight",
        "decoder.bias",
    ]
    assert bert_family.parameter_groups(modern) == {
        "embeddings": ["model.embeddings.tok_embeddings.weight"],
        "layer 0 attention": ["model.layers.0.attn.Wqkv.weight"],
        "layer 0 ffn": ["model.layers.0.mlp.Wi.weight"],
        "final norm": ["model.final_norm.weight"],
        "lm head": ["head.dense.weight", "decoder.bias"],
    }
    esm_family = detect_family(_esm2())
    assert esm_family.parameter_groups(["esm.contact_head.regression.weight"]) == {
        "contact head": ["esm.contact_head.regression.weight"]
    }


def test_esm2_scores_through_score_with_auto_tokenizer():
    model = _esm2()
    records = [(f"p{i}", s) for i, s in enumerate(["MKTAYIAK", "MKV", "ACDEFGHIKLMN", "WYV"])]
    result = score(
        model, records, curvature="identity", parameters=["last:1"], batch_size=2, progress=False
    )
    assert result.metadata["adapter"] == "hf" and (result.scores > 0).all()
    adapter = HFAdapter(model)
    assert result.metadata["num_scored_parameters"] == sum(
        p.numel() for p in adapter.scored_parameters(["last:1"]).values()
    )


def _plugin(*entries):
    class Plugin:
        @hookimpl
        def biocoreset_register_families(self, register):
            for name, family, before in entries:
                register(name, family, description=name, before=before)

    return Plugin()


def test_builtin_families_come_from_the_hook_in_order():
    assert [f.name for f in families()] == [f.name for f in BUILTIN_FAMILIES]
    assert families() == list(BUILTIN_FAMILIES)


def test_a_plugin_family_extends_detection(monkeypatch: pytest.MonkeyPatch):
    toy = ModelFamily(
        name="toy-bert",
        description="BERT with a custom head name",
        matches=lambda config: getattr(config, "model_type", "") == "bert",
        group_rules=((r"^cls\.", "toy head"),),
    )
    never = ModelFamily(name="never", description="x", matches=lambda c: False)
    pm = manager.make_plugin_manager(entry_points=False)
    pm.register(_plugin(("toy-bert", toy, "bert"), ("never", never, "generic")), name="toy")
    monkeypatch.setattr(manager, "_registry", manager.load_registry(pm))
    names = [f.name for f in families()]
    assert names.index("toy-bert") == names.index("bert") - 1
    assert names[-2:] == ["never", "generic"]
    adapter = HFAdapter(*tiny_bert())
    assert adapter.family == "toy-bert" and "toy head" in adapter.parameter_groups()
    assert HFAdapter(*tiny_esm()).family != "toy-bert"


def test_family_clash_and_bad_before_are_errors():
    toy = ModelFamily(name="bert", description="x", matches=lambda c: False)
    pm = manager.make_plugin_manager(entry_points=False)
    pm.register(_plugin(("bert", toy, "generic")), name="toy")
    with pytest.raises(PluginError, match=r"model family 'bert' is registered twice.*=biocoreset"):
        manager.load_registry(pm)
    pm = manager.make_plugin_manager(entry_points=False)
    other = ModelFamily(name="x", description="x", matches=lambda c: False)
    pm.register(_plugin(("x", other, "nope")), name="toy")
    with pytest.raises(PluginError, match="before 'nope', which is not a registered family"):
        manager.load_registry(pm).families()
    pm = manager.make_plugin_manager(entry_points=False)
    pm.register(_plugin(("y", other, "generic")), name="toy")
    with pytest.raises(PluginError, match="names must agree"):
        manager.load_registry(pm).families()


def test_hf_adapter_scores_unchanged_for_tiny_models():
    """Family detection does not change the generic adapter's behaviour on the test models."""
    records = random_rna(5, seed=2)
    for make in (tiny_esm, tiny_bert):
        adapter = HFAdapter(*make())
        result = score(adapter, records, scorer="loss", progress=False)
        assert result.length.tolist() == [len(s) for _, s in records]
