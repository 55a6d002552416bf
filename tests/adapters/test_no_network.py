"""No network access when importing biocoreset or scoring with the ``rna-fm`` and ``esmc`` adapters."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

_NO_NETWORK = """
import socket

class NetworkUsed(RuntimeError):
    pass

def _refuse(*args, **kwargs):
    raise NetworkUsed(f"network access attempted: {args!r}")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


def _block(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_score_with_both_adapters_in_process_without_network(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    _block(monkeypatch)
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.create_connection(("huggingface.co", 443))
    from biocoreset import score
    from biocoreset.adapters.rnafm_checkpoint import save_rnafm_checkpoint
    from biocoreset.adapters.rnafm_model import build_rnafm
    from biocoreset.plugins import create

    path = save_rnafm_checkpoint(build_rnafm("tiny"), tmp_path / "RNA-FM_pretrained.pth")
    rna = score(
        None,
        [("r1", "ACGUAGGU"), ("r2", "acgt")],
        adapter="rna-fm",
        adapter_options={"checkpoint": path},
        curvature="identity",
        progress=False,
    )
    assert len(rna) == 2
    pytest.importorskip("esm.models.esmc")
    esmc = create("adapter", "esmc", model_name="tiny")
    prot = score(
        esmc, [("p1", "MKTAYIAK"), ("p2", "mkv")], curvature="diagonal", subset=2, progress=False
    )
    assert len(prot) == 2


@pytest.mark.slow
def test_fresh_process_imports_and_scores_without_network(tmp_path: Path):
    """Import time included: sockets are refused before biocoreset, transformers or esm load, and
    Hugging Face offline mode is *not* set."""
    code = _NO_NETWORK + textwrap.dedent(
        """
        import importlib.util
        try:
            socket.create_connection(("huggingface.co", 443))
        except NetworkUsed:
            print("guard active")
        from biocoreset import score
        from biocoreset.plugins import create

        rna = create("adapter", "rna-fm", size="tiny")
        print("rna-fm", len(score(rna, [("r1", "ACGUAGG"), ("r2", "GGAUC")], curvature="identity",
                                      progress=False)))
        if importlib.util.find_spec("esm") is not None:
            esmc = create("adapter", "esmc", model_name="tiny")
            print("esmc", len(score(esmc, [("p1", "MKTAYI"), ("p2", "MKV")], curvature="identity",
                                        progress=False)))
        """
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache: nothing to find, nothing to fetch
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "guard active" in proc.stdout and "rna-fm 2" in proc.stdout
    if importlib.util.find_spec("esm") is not None:
        assert "esmc 2" in proc.stdout
