"""ESM-C builder / loaders against the real ``esm`` package (skipped when it is not installed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from biocoreset.adapters.esmc_model import (
    ESMC_CONFIGS,
    ESMC_HF_WEIGHTS,
    ESMC_MASK_ID,
    ESMC_NUM_TOKENS,
    ESMC_PAD_ID,
    EsmcCheckpointError,
    build_esmc,
    esmc_logits,
    esmc_tokenizer,
    load_esmc_from_hf_cache,
    load_esmc_weights,
)
from biocoreset.errors import ConfigError

pytest.importorskip(
    "esm.models.esmc", reason="the esm package is not installed (docs/install-esm.md)"
)

SEQS = ["MKTAYIAKQR", "MK", "ACDEFGHIKLMNPQRSTVWY"]
HOOKABLE = (nn.Linear, nn.Embedding, nn.LayerNorm)


def _ids() -> torch.Tensor:
    return esmc_tokenizer()(SEQS, padding=True, return_tensors="pt")["input_ids"]


def _perturbed_tiny(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = build_esmc("tiny")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def test_tokenizer():
    tok = esmc_tokenizer()
    assert len(tok) == ESMC_NUM_TOKENS
    assert (tok.cls_token_id, tok.pad_token_id, tok.eos_token_id, tok.mask_token_id) == (
        0,
        ESMC_PAD_ID,
        2,
        ESMC_MASK_ID,
    )
    ids = _ids()
    assert ids[1].tolist()[:4] == [
        0,
        tok.convert_tokens_to_ids("M"),
        tok.convert_tokens_to_ids("K"),
        2,
    ]


def test_build_tiny_and_logits_shape():
    model = build_esmc("tiny")
    assert not model.training and not model._use_flash_attn
    ids = _ids()
    out = model(sequence_tokens=ids)
    assert out.sequence_logits.shape == (3, ids.shape[1], 64)
    logits = esmc_logits(model, ids)
    assert logits.shape == (3, ids.shape[1], ESMC_NUM_TOKENS)
    torch.testing.assert_close(logits, out.sequence_logits[..., :ESMC_NUM_TOKENS])
    assert logits.requires_grad  # not under no_grad, unlike ESMC.logits


def test_build_from_dict_and_bad_names():
    model = build_esmc({"d_model": 32, "n_heads": 2, "n_layers": 1})
    assert model.embed.weight.shape == (64, 32)
    with pytest.raises(ConfigError, match="esmc_300m"):
        build_esmc("esmc_300")
    with pytest.raises(ConfigError, match="n_layers"):
        build_esmc({"d_model": 32, "n_heads": 2})


def test_real_sizes_on_meta_device():
    with torch.device("meta"):
        n300 = sum(p.numel() for p in build_esmc("esmc_300m").parameters())
        n600 = sum(p.numel() for p in build_esmc("esmc_600m").parameters())
    assert round(n300 / 1e6) == 333
    assert 550e6 < n600 < 600e6
    assert set(ESMC_HF_WEIGHTS) <= set(ESMC_CONFIGS)


def test_state_dict_round_trip_through_file(tmp_path: Path):
    src = _perturbed_tiny(0)
    path = tmp_path / "tiny.pth"
    torch.save(src.state_dict(), path)
    dst = load_esmc_weights("tiny", path)
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(esmc_logits(dst, ids), esmc_logits(src, ids), rtol=0, atol=0)
    again = build_esmc("tiny")
    assert load_esmc_weights(again, path) is again  # fills a given model in place


def test_load_errors(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_esmc_weights("tiny", tmp_path / "absent.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save(build_esmc({"d_model": 32, "n_heads": 2, "n_layers": 1}).state_dict(), wrong)
    with pytest.raises(EsmcCheckpointError, match="does not fit"):
        load_esmc_weights("tiny", wrong)
    extra = tmp_path / "extra.pth"
    torch.save({**build_esmc("tiny").state_dict(), "bogus.weight": torch.zeros(1)}, extra)
    with pytest.raises(EsmcCheckpointError, match=r"bogus\.weight"):
        load_esmc_weights("tiny", extra)
    notdict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(EsmcCheckpointError, match="state dict"):
        load_esmc_weights("tiny", notdict)


def _fill_fake_cache(hub: Path, name: str, state: dict[str, torch.Tensor]) -> None:
    repo_id, filename = ESMC_HF_WEIGHTS[name]
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    target = repo / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    torch.save(state, target)


def test_load_from_prefilled_hf_cache_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    src = _perturbed_tiny(1)
    _fill_fake_cache(tmp_path / "hub", "esmc_300m", src.state_dict())
    model = load_esmc_from_hf_cache("esmc_300m", model=build_esmc("tiny"))
    ids = _ids()
    with torch.no_grad():
        torch.testing.assert_close(esmc_logits(model, ids), esmc_logits(src, ids), rtol=0, atol=0)


def test_hf_cache_miss_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="esmc-600m-2024-12"):
        load_esmc_from_hf_cache("esmc_600m")
    with pytest.raises(ConfigError, match="esmc_600m"):
        load_esmc_from_hf_cache("esmc_60m")


def _params_used_outside_owner(model: nn.Module, run) -> dict[str, set[str]]:
    """Parameters passed to a torch function while the innermost running module is not their owner."""
    names = {id(p): n for n, p in model.named_parameters()}
    stack: list[nn.Module] = []
    handles = []
    for m in model.modules():
        handles.append(m.register_forward_pre_hook(lambda mod, args: (stack.append(mod), None)[1]))
        handles.append(m.register_forward_hook(lambda mod, args, out: (stack.pop(), None)[1]))
    found: dict[str, set[str]] = {}

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            for x in [*args, *kwargs.values()]:
                for y in x if isinstance(x, (list, tuple)) else [x]:
                    if isinstance(y, nn.Parameter):
                        own = list(stack[-1].parameters(recurse=False)) if stack else []
                        if not any(p is y for p in own):
                            found.setdefault(names[id(y)], set()).add(
                                type(stack[-1]).__name__ if stack else "-"
                            )
            return func(*args, **kwargs)

    try:
        with Mode():
            run()
    finally:
        for h in handles:
            h.remove()
    return found


def test_every_parameter_lives_in_a_hookable_module_and_is_used_there():
    """Per-sample gradient hooks on Linear / Embedding / LayerNorm cover all of ESM-C."""
    model = _perturbed_tiny(2)
    for module in model.modules():
        if list(module.parameters(recurse=False)):
            assert isinstance(module, HOOKABLE), type(module)
    ids = _ids()
    outside = _params_used_outside_owner(model, lambda: esmc_logits(model, ids).sum().backward())
    assert outside == {}
    assert all(p.grad is not None for p in model.parameters())
