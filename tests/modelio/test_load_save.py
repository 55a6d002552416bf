"""Model I/O: whatever the library (or a model's authors) saved loads back, with no extra options.

Every case compares the loaded weights with the saved ones exactly, and the loaded model's losses
with the original's.
"""

from __future__ import annotations

import json

import pytest
import torch

from biocoreset.adapters.rnafm_checkpoint import (
    RnaFmCheckpointError,
    load_rnafm_checkpoint,
    save_rnafm_checkpoint,
)
from biocoreset.errors import ConfigError, InputError
from biocoreset.modelio import (
    MODEL_MANIFEST,
    guess_adapter,
    load_model,
    load_weights,
    model_spec,
    read_manifest,
    resolve_device,
    save_model,
)
from biocoreset.plugins import create
from biocoreset.testing import random_rna, tiny_esm

RECORDS = random_rna(4, seed=1, min_len=6, max_len=20)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        # exact: weights saved and read back, nothing recomputed
        assert torch.equal(sa[k], sb[k]), k


def _same_losses(a, b) -> None:
    la = a.per_sample_loss(a.collate(RECORDS, seed=0))
    lb = b.per_sample_loss(b.collate(RECORDS, seed=0))
    torch.testing.assert_close(la, lb, rtol=0, atol=0)


def _rnafm(**options):
    adapter = create("adapter", "rna-fm", size="tiny", **options)
    with torch.no_grad():  # a non-zero <mask> row, so the official-format zeroing is visible
        adapter.model.esm.embeddings.word_embeddings.weight.add_(0.01)
    return adapter


@pytest.mark.parametrize("fmt", ["hf", "state-dict"])
def test_rnafm_saved_folder_loads_back_as_rnafm(tmp_path, fmt):
    adapter = _rnafm(invalid="replace")
    save_model(
        adapter, tmp_path / "m", format=fmt, spec={"adapter_options": {"invalid": "replace"}}
    )
    manifest = read_manifest(tmp_path / "m")
    assert manifest.adapter == "rna-fm" and manifest.format == fmt
    loaded = load_model(tmp_path / "m", device="cpu")
    assert type(loaded).__name__ == "RnaFmAdapter" and loaded.alphabet is None  # invalid="replace"
    _same_weights(adapter.model, loaded.model)
    _same_losses(adapter, loaded)
    assert model_spec(loaded)["adapter_options"] == {"invalid": "replace"}


def test_hf_adapter_on_an_rnafm_folder_uses_the_family_tokenizer(tmp_path):
    adapter = _rnafm()
    save_model(adapter, tmp_path / "m")  # its RnaFmTokenizer cannot be read by AutoTokenizer
    loaded = load_model(tmp_path / "m", adapter="hf")
    assert type(loaded).__name__ == "HFAdapter" and loaded.family == "rna-fm"
    _same_weights(adapter.model, loaded.model)


def test_pretrain_run_folder_resolves_to_final(tmp_path):
    adapter = _rnafm()
    save_model(adapter, tmp_path / "run" / "final")
    (tmp_path / "run" / "checkpoints").mkdir()
    _same_weights(adapter.model, load_model(tmp_path / "run").model)
    (tmp_path / "unfinished" / "checkpoints").mkdir(parents=True)
    with pytest.raises(InputError, match="unfinished pretrain run"):
        load_model(tmp_path / "unfinished")


def test_safetensors_with_legacy_layer_norm_names_loads_as_weights(tmp_path):
    adapter = _rnafm()
    save_model(adapter, tmp_path / "m")
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "m" / "model.safetensors").keys()
    other = create("adapter", "rna-fm", size="tiny")
    load_weights(other.model, tmp_path / "m" / "model.safetensors")
    _same_weights(adapter.model, other.model)
    assert any(k.endswith("LayerNorm.gamma") for k in keys) or all("gamma" not in k for k in keys)


def test_rnafm_files_official_checkpoint_and_state_dicts(tmp_path):
    adapter = _rnafm()
    save_rnafm_checkpoint(adapter.model, tmp_path / "RNA-FM_pretrained.pth")
    official = load_model(tmp_path / "RNA-FM_pretrained.pth")
    _same_weights(load_rnafm_checkpoint(tmp_path / "RNA-FM_pretrained.pth"), official.model)
    assert guess_adapter(tmp_path / "RNA-FM_pretrained.pth") == "rna-fm"
    torch.save(adapter.model.state_dict(), tmp_path / "sd.pt")  # transformers key names
    _same_weights(adapter.model, load_model(tmp_path / "sd.pt").model)
    ckpt = {"step": 3, "model": adapter.model.state_dict(), "optimizer": {}}
    torch.save(ckpt, tmp_path / "step-000000003.pt")  # a pretrain checkpoint
    _same_weights(adapter.model, load_model(tmp_path / "step-000000003.pt").model)
    wrong = dict(adapter.model.state_dict())
    wrong["esm.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(7, 32)
    wrong["esm.encoder.layer.0.intermediate.dense.bias"] = torch.zeros(7)
    torch.save(wrong, tmp_path / "odd.pt")
    with pytest.raises(RnaFmCheckpointError, match="none of the named sizes"):
        load_model(tmp_path / "odd.pt")


def test_rnafm_size_given_for_a_bare_state_dict(tmp_path):
    adapter = create(
        "adapter",
        "rna-fm",
        size={
            "num_hidden_layers": 1,
            "hidden_size": 16,
            "intermediate_size": 24,
            "num_attention_heads": 2,
            "max_position_embeddings": 40,
        },
    )
    torch.save(adapter.model.state_dict(), tmp_path / "sd.pt")
    size = {
        "num_hidden_layers": 1,
        "hidden_size": 16,
        "intermediate_size": 24,
        "num_attention_heads": 2,
    }
    loaded = load_model(tmp_path / "sd.pt", adapter="rna-fm", options={"size": size})
    _same_weights(adapter.model, loaded.model)


def test_esmc_state_dicts_and_saved_folders(tmp_path):
    pytest.importorskip("esm.models.esmc")
    adapter = create("adapter", "esmc", model_name="small")
    torch.save(adapter.model.state_dict(), tmp_path / "esmc.pth")
    assert guess_adapter(tmp_path / "esmc.pth") == "esmc"
    for loaded in (
        load_model(tmp_path / "esmc.pth"),  # size read from the shapes
        load_model(tmp_path / "esmc.pth", adapter="esmc", options={"name": "small"}),
    ):
        _same_weights(adapter.model, loaded.model)
    save_model(adapter, tmp_path / "final", spec={"adapter_options": {"model_name": "small"}})
    assert read_manifest(tmp_path / "final").format == "state-dict"  # not a transformers model
    _same_weights(adapter.model, load_model(tmp_path / "final").model)
    from biocoreset.adapters.esmc_model import EsmcCheckpointError

    with pytest.raises(EsmcCheckpointError, match="does not fit"):
        load_model(tmp_path / "esmc.pth", adapter="esmc", options={"name": "tiny"})


def test_transformers_folder_and_finetune_style_folder(tmp_path):
    model, tok = tiny_esm(dtype=torch.float32)
    model.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    assert guess_adapter(tmp_path / "hf") == "hf"
    loaded = load_model(tmp_path / "hf")
    _same_weights(model, loaded.model)
    save_model(loaded, tmp_path / "ft", format="state-dict")  # model.pt + config + tokenizer
    assert {"model.pt", "config.json", MODEL_MANIFEST} <= {
        p.name for p in (tmp_path / "ft").iterdir()
    }
    again = load_model(tmp_path / "ft")
    _same_weights(model, again.model)
    _same_losses(loaded, again)
    with pytest.raises(ConfigError, match="not a transformers model folder"):
        load_model(tmp_path / "ft" / "model.pt", adapter="hf")


def test_manifest_options_apply_to_their_adapter_only(tmp_path):
    adapter = _rnafm(loss_mode="paper-compat")
    save_model(
        adapter,
        tmp_path / "m",
        spec={"adapter_options": {"invalid": "unk", "loss_mode": "paper-compat"}},
    )
    manifest = json.loads((tmp_path / "m" / MODEL_MANIFEST).read_text())
    assert manifest["adapter_options"] == {"invalid": "unk"}  # loss_mode is a scoring choice
    assert load_model(tmp_path / "m").alphabet is None  # invalid="unk" accepts every letter
    user = load_model(tmp_path / "m", options={"invalid": "error"})
    assert user.alphabet is not None


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no model"):
        load_model(tmp_path / "empty")
    torch.save({"w": torch.zeros(2)}, tmp_path / "x.pt")
    with pytest.raises(ConfigError, match="cannot tell which adapter"):
        load_model(tmp_path / "x.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="not a readable weights file"):
        load_model(tmp_path / "junk.pt", adapter="rna-fm")
    with pytest.raises(ConfigError, match="--model PATH"):
        load_model(None, adapter="hf")
    with pytest.raises(ConfigError, match="does not fit the model"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "x.pt")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ConfigError, match="not a torch device"):
        resolve_device("gpu-please")


def test_a_manifests_random_init_does_not_discard_the_saved_weights(tmp_path):
    """A model first built with ``random_init=True`` (recorded in its manifest) loads its trained
    weights back, not a fresh random model (issue 25: ESM-C pretraining runs evaluated at random)."""
    pytest.importorskip("esm")
    from biocoreset.modelio import load_model, save_model
    from biocoreset.plugins import create

    size = {"d_model": 32, "n_heads": 2, "n_layers": 1}
    adapter = create("adapter", "esmc", model_name=size, random_init=True)
    with torch.no_grad():
        for p in adapter.model.parameters():
            p.add_(0.5)
    spec = {"adapter": "esmc", "adapter_options": {"model_name": size, "random_init": True}}
    folder = save_model(adapter, tmp_path / "m", format="state-dict", spec=spec)
    back = load_model(folder, device=None)
    for (name, a), (_, b) in zip(
        adapter.model.state_dict().items(), back.model.state_dict().items(), strict=True
    ):
        # exact: weights saved and read back
        assert torch.equal(a, b), name
    fresh = load_model(folder, device=None, random_init=True)  # still available when asked for
    assert not all(
        # exact: a fresh random init differs
        torch.equal(a, b)
        for a, b in zip(adapter.model.parameters(), fresh.model.parameters(), strict=True)
    )
