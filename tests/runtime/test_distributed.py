"""The distributed context in a single process: every collective is a no-op."""

from __future__ import annotations

import pytest
import torch

from biocoreset.runtime.distributed import DistContext, current


def test_single_process_context_is_a_no_op():
    ctx = current()
    assert ctx == DistContext() and not ctx.is_distributed and ctx.is_main
    t = torch.ones(3)
    ctx.all_reduce_(t)
    assert t.tolist() == [1.0, 1.0, 1.0]
    assert ctx.all_gather_object(5) == [5] and ctx.broadcast_object("x") == "x"


def test_main_only_runs_once_and_reraises():
    ctx = DistContext()
    assert ctx.main_only(lambda: 7) == 7
    from biocoreset.errors import ConfigError

    def fail():
        raise ConfigError("bad")

    with pytest.raises(ConfigError, match="bad"):
        ctx.main_only(fail)
