"""biocoreset.diagnose: known coverage on a labelled toy corpus, warnings, files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from biocoreset.diagnose import composition_summary, diagnose, labels_from_regex, read_labels
from biocoreset.errors import InputError, OutputExistsError
from biocoreset.store.result import ScoreResult

LABELS = ["tRNA", "rRNA", "miRNA", "snoRNA", "riboswitch"]


def _result(n=100, meta=None, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"{LABELS[i % 5]}_{i:03d}" for i in range(n)]
    lengths = rng.integers(20, 300, size=n)
    return ScoreResult(
        ids=ids,
        scores=rng.gamma(2.0, size=n),
        loss=rng.normal(1.3, 0.1, size=n),
        length=lengths,
        metadata={"negated": False, **(meta or {})},
    )


def test_known_coverage_entropy_and_share(tmp_path):
    r = _result()
    # 6 tRNA + 2 rRNA: 2 of 5 labels, largest share 6/8
    coreset = [r.ids[i] for i in (0, 5, 10, 15, 20, 25, 1, 6)]
    d = diagnose(r, label_regex=r"^([A-Za-z]+)_", coresets={"mine": coreset}, random_draws=40)
    row = d.summary["coresets"]["mine"]["coreset"]
    assert (row["size"], row["covered"], row["labels"]) == (8, 2, 5)
    assert row["coverage"] == pytest.approx(0.4)
    assert row["largest_share"] == pytest.approx(6 / 8)
    expected_entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert row["entropy"] == pytest.approx(expected_entropy)
    assert row["median_length"] == float(np.median(r.length[[0, 5, 10, 15, 20, 25, 1, 6]]))
    rand = d.summary["coresets"]["mine"]["random"]
    assert 3.5 < rand["covered"]["mean"] <= 5.0  # 8 of 100 across 5 equal labels: ~4.4 expected
    # the same labels from a table
    table = tmp_path / "labels.tsv"
    table.write_text("id\tlabel\n" + "".join(f"{i}\t{i.split('_')[0]}\n" for i in r.ids))
    d2 = diagnose(r, labels=table, coresets={"mine": coreset}, random_draws=40)
    assert d2.summary["coresets"]["mine"]["coreset"] == row


def test_coreset_folders_and_missing_ids(tmp_path):
    r = _result()
    folder = tmp_path / "co"
    folder.mkdir()
    (folder / "coreset_ids.txt").write_text("\n".join(r.ids[:10]) + "\n")
    d = diagnose(r, coresets=[folder])
    assert d.summary["coresets"][str(folder)]["coreset"]["size"] == 10
    (folder / "coreset_ids.txt").write_text("nope_1\n")
    with pytest.raises(InputError, match=r"1 id\(s\) are not in the scores.*nope_1"):
        diagnose(r, coresets=[folder])


def test_warnings_name_their_fix(tmp_path):
    L = np.arange(20, 220)
    r = ScoreResult(
        ids=[f"s{i}" for i in range(200)],
        scores=1e4 / L**2,
        loss=np.ones(200),
        length=L,
        metadata={
            "negated": False,
            "subset_size": 40,
            "fit_on": "subset",
            "fisher_zero_entries": 300,
            "num_scored_parameters": 1000,
            "stability": {
                "draws": 4,
                "split_half": 0.5,
                "projected": 0.667,
                "single_draw": 0.333,
                "draws_for_target": 18.0,
                "target": 0.9,
            },
        },
    )
    path = tmp_path / "run" / "scores.parquet"
    r.save(path)
    (path.parent / "finetune").mkdir()
    (path.parent / "finetune" / "finetune.json").write_text(
        json.dumps(
            {"enabled": True, "steps": 16, "subset_size": 40, "config": {"warmup_steps": 50}}
        )
    )
    d = diagnose(path)
    text = " ".join(d.warnings)
    assert "--debias length" in text  # length
    assert "--mask-draws 18" in text  # stability
    assert "30% of the Fisher entries are zero" in text
    assert "D_sub holds only 40" in text
    assert "ran 16 steps, fewer than its 50 warm-up steps" in text
    no_stab = diagnose(_result(n=200))
    assert any("stability unknown" in w for w in no_stab.warnings)


def test_write_files_and_refuse_to_overwrite(tmp_path):
    r = _result(
        meta={
            "stability": {
                "draws": 2,
                "split_half": 0.9,
                "projected": 0.95,
                "single_draw": 0.9,
                "draws_for_target": 1.0,
                "target": 0.9,
            }
        }
    )
    d = diagnose(r, label_regex=r"^([A-Za-z]+)_", coresets={"top": r.ids[:20]})
    out = tmp_path / "diag"
    written = d.write(out)
    assert sorted(written) == sorted(
        ["coresets.png", "length.png", "loss.png", "stability.png", "report.json", "report.md"]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["coresets"]["top"]["coreset"]["size"] == 20
    md = (out / "report.md").read_text()
    assert "labels covered" in md and "length.png" in md
    with pytest.raises(OutputExistsError, match="already holds"):
        d.write(out)
    d.write(out, force=True)


def test_empty_scores_and_bad_label_files(tmp_path):
    empty = ScoreResult(ids=[], scores=[], loss=[], length=[], metadata={})
    with pytest.raises(InputError, match="the score file is empty"):
        diagnose(empty)
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tx\nb only\n")
    with pytest.raises(InputError, match="line 2"):
        read_labels(bad)
    with pytest.raises(InputError, match="does not exist"):
        read_labels(tmp_path / "missing.tsv")
    assert labels_from_regex(["ab"], r"z") == ["(unlabelled)"]


def test_composition_summary_lines():
    L = np.arange(1, 201)
    labels = np.array([f"c{i % 4}" for i in range(200)], dtype=object)
    lines = composition_summary(np.arange(0, 200, 4), L, labels)
    assert lines[0].startswith("length: median 99.0 (corpus 100.5")
    assert lines[1].startswith("labels: 1 of 4 covered") and "largest share 100%" in lines[1]


def _stability(projected):
    return {
        "draws": 4,
        "split_half": projected / (2 - projected),
        "projected": projected,
        "single_draw": 0.3,
        "draws_for_target": 18.0,
        "target": 0.9,
    }


def test_low_or_unknown_stability_names_the_setting_for_the_compute_you_have():
    from biocoreset.diagnose.advice import FOR_HALF_DRAW, FOR_ONE_DRAW

    low = diagnose(_result(n=200, meta={"stability": _stability(0.6), "mask_draws": 4}))
    text = " ".join(low.warnings)
    for setting in (*FOR_ONE_DRAW, *FOR_HALF_DRAW):
        assert setting.flags in text and setting.model in text
    assert "for the compute you have" in text
    unknown = " ".join(diagnose(_result(n=200)).warnings)
    assert all(s.flags in unknown for s in FOR_ONE_DRAW)
    # a stable run gets no such advice
    stable = diagnose(_result(n=200, meta={"stability": _stability(0.95), "mask_draws": 8}))
    assert not any(FOR_ONE_DRAW[0].flags in w for w in stable.warnings)


def test_no_compute_advice_when_the_run_already_uses_that_setting():
    from biocoreset.diagnose.advice import FOR_ONE_DRAW

    for best in FOR_ONE_DRAW:
        meta = {
            "stability": _stability(0.6),
            "mask_draws": best.mask_draws,
            "scored_parameter_patterns": list(best.parameters),
        }
        text = " ".join(diagnose(_result(n=200, meta=meta)).warnings)
        assert "--mask-draws 18" in text  # the draws advice stays
        assert best.flags not in text
        # the same scope with fewer draws still gets it
        meta["mask_draws"] = best.mask_draws - 1
        text = " ".join(diagnose(_result(n=200, meta=meta)).warnings)
        assert best.flags in text


def test_the_named_setting_is_one_the_cli_accepts():
    import shlex

    from biocoreset.cli import build_parser
    from biocoreset.diagnose.advice import FOR_HALF_DRAW, FOR_ONE_DRAW

    for setting in (*FOR_ONE_DRAW, *FOR_HALF_DRAW):
        argv = ["score", "x.fa", "--model", "m", "-o", "s.parquet", *shlex.split(setting.flags)]
        args = build_parser().parse_args(argv)
        assert tuple(args.parameters) == setting.parameters
        assert args.mask_draws == setting.mask_draws
