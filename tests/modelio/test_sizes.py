"""Named model sizes: the parameter counts are those of the models the names build."""

from __future__ import annotations

import pytest

from biocoreset.modelio import model_sizes
from biocoreset.plugins import create


def _count(adapter) -> int:
    return sum(p.numel() for p in adapter.model.parameters())


def test_rnafm_sizes():
    sizes = model_sizes("rna-fm")
    assert list(sizes) == ["rna-fm", "base", "small", "tiny"]
    assert sizes["rna-fm"]["params"] == 99_521_546  # RNA-FM's published 99.5M
    assert (sizes["small"]["layers"], sizes["small"]["hidden"], sizes["small"]["heads"]) == (
        4,
        64,
        4,
    )
    for name in ("tiny", "small"):
        assert sizes[name]["params"] == _count(create("adapter", "rna-fm", size=name))


def test_esmc_sizes():
    pytest.importorskip("esm.models.esmc")
    sizes = model_sizes("esmc")
    assert {"esmc_300m", "esmc_600m", "base", "small", "tiny"} == set(sizes)
    assert sizes["esmc_600m"]["params"] == 575_036_992
    for name in ("tiny", "small"):
        assert sizes[name]["params"] == _count(create("adapter", "esmc", model_name=name))


def test_adapters_without_named_sizes():
    assert model_sizes("hf") == {}
