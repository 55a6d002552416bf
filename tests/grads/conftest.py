"""Fixtures for the gradient-engine tests: tiny real architectures and a hand-made awkward model."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

from biocoreset.adapters.base import MaskedLMAdapter
from biocoreset.adapters.hf import HFAdapter
from biocoreset.testing import tiny_bert, tiny_esm

VOCAB = ["<pad>", "<mask>", "A", "C", "G", "U", "<cls>", "<eos>"]


class AwkwardLM(nn.Module):
    """A tiny masked LM using parameters in every way the hook engine must cover.

    * ``tok`` — an embedding with ``padding_idx``, tied to ``decoder`` (an ``nn.Linear``);
    * ``pos`` — looked up with ``[1, T]`` ids and broadcast over the batch by an addition;
    * ``mix`` — one ``nn.Linear`` called twice (per token, and on a per-sequence mean);
    * ``tbe`` — a ``NonDynamicallyQuantizableLinear`` applied in ``(T, B, E)`` layout;
    * ``side`` — an ``nn.Linear`` whose weight is also passed to ``F.linear`` outside it;
    * ``ln0`` (no bias), ``ln1`` (no affine), ``ln2`` (weight and bias);
    * ``bias`` — a bare parameter added after the decoder;
    * ``unused`` — a Linear the loss never reaches.
    """

    def __init__(self, d: int = 6, max_pos: int = 40) -> None:
        super().__init__()
        V = len(VOCAB)
        self.tok = nn.Embedding(V, d, padding_idx=0)
        self.pos = nn.Embedding(max_pos, d)
        self.ln0 = nn.LayerNorm(d, bias=False)
        self.mix = nn.Linear(d, d)
        self.tbe = NonDynamicallyQuantizableLinear(d, d)
        self.side = nn.Linear(d, d)
        self.ln1 = nn.LayerNorm(d, elementwise_affine=False)
        self.ln2 = nn.LayerNorm(d)
        self.decoder = nn.Linear(d, V, bias=False)
        self.decoder.weight = self.tok.weight
        self.bias = nn.Parameter(torch.zeros(V))
        self.unused = nn.Linear(d, 2)

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        h = self.tok(ids) + self.pos(torch.arange(T, device=ids.device)[None])
        h = self.ln0(h)
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        ctx = (h * m).sum(1, keepdim=True) / m.sum(1, keepdim=True)
        h = h + torch.tanh(self.mix(h)) + self.mix(ctx)
        h = self.tbe(h.transpose(0, 1)).transpose(0, 1)
        h = h + F.linear(torch.tanh(h), self.side.weight) + self.side(h)
        h = self.ln2(self.ln1(h))
        return self.decoder(h) + self.bias


class AwkwardAdapter(MaskedLMAdapter):
    """Adapter for :class:`AwkwardLM` over the RNA alphabet."""

    name = "awkward"
    mask_token_id = 1
    pad_token_id = 0
    random_token_ids = (2, 3, 4, 5)

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model, max_length=30)

    def encode(self, record_id: str, sequence: str) -> tuple[list[int], list[bool]]:
        ids = [6, *(VOCAB.index(c) for c in sequence), 7]
        return ids, [False, *([True] * len(sequence)), False]

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask)


def make_awkward(seed: int = 0, dtype: torch.dtype = torch.float64) -> AwkwardAdapter:
    torch.manual_seed(seed)
    model = AwkwardLM().to(dtype).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return AwkwardAdapter(model)


@functools.cache
def make_hf(kind: str, seed: int = 1, dtype: torch.dtype = torch.float64) -> HFAdapter:
    """A tiny Hugging Face adapter, built once per session (tests never change its weights)."""
    build = {"esm": tiny_esm, "bert": tiny_bert}[kind]
    return HFAdapter(*build(seed=seed, dtype=dtype))


@pytest.fixture(params=["esm", "bert", "awkward"])
def adapter(request: pytest.FixtureRequest) -> MaskedLMAdapter:
    """Each float64 test model, wrapped in its adapter."""
    return make_awkward() if request.param == "awkward" else make_hf(request.param)


@pytest.fixture
def awkward():
    """Factory of :class:`AwkwardAdapter` instances (float64 by default)."""
    return make_awkward


@pytest.fixture
def hf():
    """Factory of tiny Hugging Face adapters: ``hf("esm" | "bert", seed=1, dtype=torch.float64)``."""
    return make_hf


@pytest.fixture
def awkward_model_class():
    """The :class:`AwkwardLM` class."""
    return AwkwardLM
