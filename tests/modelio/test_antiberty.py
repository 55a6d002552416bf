"""AntiBERTy: ``load_model("antiberty")`` and the same weights as a plain folder know antibodies.

The masked loss (15% masks, 10 draws) on germline V domains is far below the loss on a protein
that is not an antibody; a tokenizer that mapped residues to [UNK] could not do that.
"""

from __future__ import annotations

import shutil
import sys

import pytest
import torch

from biocoreset.errors import ConfigError
from biocoreset.modelio import load_model
from biocoreset.modelio.sources import antiberty_files, model_source

# Human lysozyme C (P61626), mature chain: a protein that is not an antibody.
LYSOZYME = (
    "KVFERCELARTLKRLGMDGYRGISLANWMCLAKWESGYNTRATNYNAGDRSTDYGIFQINSRYWCNDGKTPGAVNACHLSCSALLQDNIAD"
    "AVACAKRVVRDPQGIRAWVAWRNRCQNRDVRQYVQGCGV"
)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "antiberty", None)  # import antiberty -> ImportError
    with pytest.raises(ConfigError, match=r"pip install 'biocoreset\[antibody\]'") as info:
        load_model("antiberty")
    assert "\n" not in str(info.value)


def test_an_existing_path_wins_over_the_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "antiberty").mkdir()
    assert model_source("antiberty") is None


def _mean_loss(adapter, record_id, sequence, draws=10):
    losses = []
    with torch.no_grad():
        for seed in range(draws):
            batch = adapter.collate([(record_id, sequence)], seed=seed)
            losses.append(float(adapter.per_sample_loss(batch)[0]))
    return sum(losses) / len(losses)


def _germline(allele=None, species="human", chain="H"):
    from biocoreset.bench.antibody.germlines import germlines

    records = germlines(chains=[chain], species=[species])
    if allele is not None:
        records = [g for g in records if g.allele == allele]
    return records[0]


def _check_knows_antibodies(adapter):
    heavy = _germline("IGHV3-23*01")
    kappa = _germline(chain="K")
    assert adapter.max_length == 510  # 512 positions less [CLS] and [SEP]
    assert _mean_loss(adapter, heavy.allele, heavy.sequence) < 0.3
    assert _mean_loss(adapter, kappa.allele, kappa.sequence) < 0.3
    assert _mean_loss(adapter, "lysozyme", LYSOZYME) > 2.0


@pytest.mark.slow
def test_named_source_knows_antibodies():
    pytest.importorskip("antiberty")
    pytest.importorskip("anarci")
    adapter = load_model("antiberty", device="cpu")
    assert adapter.name == "hf" and adapter.family == "bert"
    _check_knows_antibodies(adapter)


@pytest.mark.slow
def test_plain_folder_of_the_same_weights_knows_antibodies(tmp_path):
    pytest.importorskip("antiberty")
    pytest.importorskip("anarci")
    folder, vocab = antiberty_files()
    shutil.copytree(folder, tmp_path / "ab")
    shutil.copy(vocab, tmp_path / "ab" / "vocab.txt")
    adapter = load_model(tmp_path / "ab", device="cpu")
    _check_knows_antibodies(adapter)
