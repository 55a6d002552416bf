"""The ``score`` and ``finetune`` flags derived from the config fields: what a command line gives
is what the config gets; choices and checks are the fields' own."""

from __future__ import annotations

import attrs
import pytest

from biocoreset.cli import build_parser
from biocoreset.cli.common import config_values
from biocoreset.config import FinetuneConfig, ScoreConfig
from biocoreset.errors import ConfigError
from biocoreset.run.file import run_config_from_dict


def _parse(*argv: str):
    return build_parser().parse_args([*argv, "c.fa", "-o", "out"])


def test_score_flags_reach_the_config():
    args = _parse(
        "score",
        "--parameters",
        "lm_head.*",
        "blocks.0.*",
        "--negate",
        "--subset",
        "0.5",
        "--damping",
        "1e-3",
        "--engine",
        "loop",
        "--mask-draws",
        "4",
        "--mask-reduce",
        "mean-gradient",
        "--invalid",
        "replace",
    )
    cfg = attrs.evolve(ScoreConfig(), **config_values(args, ScoreConfig))
    assert cfg.parameters == ("lm_head.*", "blocks.0.*")
    assert (cfg.negate, cfg.subset, cfg.damping, cfg.engine) == (True, 0.5, 1e-3, "loop")
    assert (cfg.mask_draws, cfg.mask_reduce, cfg.invalid) == (4, "mean-gradient", "replace")


def test_flags_not_given_leave_the_preset():
    for command, config in (("score", ScoreConfig), ("finetune", FinetuneConfig)):
        assert config_values(_parse(command), config) == {}


def test_finetune_flags_reach_the_config():
    args = _parse("finetune", "--lr", "1e-3", "--subset", "32", "--schedule", "constant")
    values = config_values(args, FinetuneConfig)
    assert values == {"lr": 1e-3, "subset": 32, "schedule": "constant"}


def test_choices_are_the_validators():
    with pytest.raises(SystemExit):
        _parse("score", "--engine", "hook")
    with pytest.raises(
        ConfigError, match=r"engine must be one of auto, loop, hooks; got 'hook'\. "
    ):
        ScoreConfig(engine="hook")


def test_run_file_errors_name_the_key_once():
    table = {"output": "r", "data": {"path": "c.fa", "invalid": "drop"}}
    with pytest.raises(ConfigError, match=r"^\[data\] invalid must be one of error, replace, skip"):
        run_config_from_dict(table)


def test_every_name_of_the_config_package_is_there():
    import biocoreset.config

    assert [n for n in biocoreset.config.__all__ if not hasattr(biocoreset.config, n)] == []


def test_the_config_offers_the_engines_make_engine_takes():
    from biocoreset.config.core import ENGINES
    from biocoreset.grads import ENGINES as MAKE_ENGINE_NAMES

    assert ENGINES == MAKE_ENGINE_NAMES
