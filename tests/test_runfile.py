"""The ``biocoreset run`` file: keys derived from the config classes, strict errors naming the key,
moved keys, per-method selector options."""

from __future__ import annotations

import attrs
import pytest

from biocoreset.config import FinetuneConfig, ScoreConfig, parse_damping
from biocoreset.config.toml import schema_of
from biocoreset.errors import ConfigError, UnknownComponentError
from biocoreset.run.check import selector_options
from biocoreset.run.file import SCHEMA, RunSelectConfig, load_run_config, run_config_from_dict


def _cfg(**tables):
    return run_config_from_dict({"output": "/tmp/r", "data": {"path": "/tmp/c.fa"}, **tables})


def test_the_schema_is_the_config_fields():
    shared = {"subset", "subset_seed", "invalid", "replacement", "progress"}
    assert set(SCHEMA["score"]) == {f.name for f in attrs.fields(ScoreConfig)} - shared
    assert set(SCHEMA["finetune"]) == {f.name for f in attrs.fields(FinetuneConfig)} - shared
    assert set(SCHEMA["select"]) == {f.name for f in attrs.fields(RunSelectConfig)}
    assert SCHEMA["score"]["masking"]["replacement"].text == "a list of three numbers"
    assert SCHEMA["data"]["subset"].text == "a number or a list of strings"


def test_a_new_field_is_a_new_key():
    @attrs.frozen(kw_only=True)
    class Extra:
        window: int | None = None
        names: tuple[str, ...] = ()
        table: dict[str, dict[str, int]] = attrs.field(factory=dict)

    schema = schema_of(Extra)
    assert [schema[k].text for k in ("window", "names", "table")] == [
        "an integer",
        "a list of strings",
        "a table of tables",
    ]
    assert schema["window"].check(3) and not schema["window"].check(True)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"score": {"dampng": 1e-3}}, "unknown key 'score.dampng'. Did you mean 'damping'?"),
        ({"score": {"batch_size": "16"}}, "score.batch_size must be an integer, got '16'"),
        ({"score": {"damping": True}}, "score.damping must be a number or a string, got True"),
        ({"score": {"damping": "lots"}}, r"\[score\] damping must be a number >= 0"),
        ({"score": {"damping_relative": 0.1}}, "damping = '0.1\\*mean' \\(relative\\)"),
        ({"score": {"loss_mode": "paper-compat"}}, "put loss_mode in \\[model\\] options"),
        (
            {"score": {"subset": 10}},
            "'score.subset' is no longer a key: set it once, in \\[data\\]",
        ),
        ({"select": {"beta": 0.1}}, "\\[select.options.cci\\] beta = ..."),
        ({"select": {"options": {"beta": 0.1}}}, "select.options must be a table of tables"),
        (
            {"select": {"methods": ["topk"], "options": {"cci": {"beta": 0.1}}}},
            "\\[select.options.cci\\] is given but 'cci' is not in select.methods",
        ),
        (
            {"score": {"masking": {"probability": "x"}}},
            "score.masking.probability must be a number",
        ),
    ],
)
def test_errors_name_the_key(tables, message):
    with pytest.raises(ConfigError, match=message):
        _cfg(**tables)


def test_damping_forms_and_the_loss_in_model_options():
    assert _cfg(score={"damping": "0.2*mean"}).score.damping == "0.2*mean"
    assert _cfg(score={"damping": 1e-3}).score.damping == 0.001
    assert _cfg().score.damping == "0.1*mean"
    pc = _cfg(preset="paper-compat")
    assert pc.score.damping == 1e-8 and pc.model.options["loss_mode"] == "paper-compat"
    assert parse_damping("2*mean") == "2.0*mean"


def test_selector_options_are_the_presets_plus_the_method_table():
    cfg = _cfg(
        preset="paper-compat",
        select={"methods": ["cci", "topk"], "options": {"cci": {"beta": 0.2}}},
    )
    options = selector_options(cfg)
    assert options["cci"] == {
        "beta": 0.2,
        "strata": 50,
        "edges": "released",
        "ties": "numpy",
        "rng": "legacy",
    }
    assert options["topk"] == {"ties": "numpy"}
    assert selector_options(_cfg())["cci"] == {"beta": 0.05, "strata": 50}


def test_unknown_selector_fails_before_any_work():
    with pytest.raises(UnknownComponentError, match="Did you mean 'topk'"):
        selector_options(_cfg(select={"methods": ["topq"]}))


def test_load_run_config_reads_relative_paths(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(
        'output = "out"\n[data]\npath = "c.fa"\n[select]\nmethods = ["cci"]\n'
        "[select.options.cci]\nstrata = 10\n"
    )
    cfg = load_run_config(path)
    assert cfg.output == str((tmp_path / "out").resolve())
    assert cfg.select.options_for("cci") == {"strata": 10}


def test_the_documented_run_file_loads(tmp_path):
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "pipeline.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    path = tmp_path / "run.toml"
    path.write_text(block)
    cfg = load_run_config(path)
    assert cfg.score.damping == "0.1*mean" and cfg.score.length_window == 64
    assert cfg.select.options_for("cci") == {"beta": 0.05, "strata": 50}
    assert set(selector_options(cfg)) == {"cci", "topk"}


def test_select_debias_is_a_run_file_key():
    cfg = _cfg(select={"methods": ["cci", "topk"], "debias": "length"})
    assert cfg.select.debias == "length"
    assert _cfg(select={"methods": ["cci"]}).select.debias is None
    with pytest.raises(ConfigError, match=r"lenght.*Did you mean 'length'"):
        _cfg(select={"methods": ["cci"], "debias": "lenght"})
    with pytest.raises(ConfigError, match="not to random"):
        _cfg(select={"methods": ["cci", "random"], "debias": "length"})
