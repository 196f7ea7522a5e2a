"""Reading findings from sweep files: spreads, the worst seed, glue with provenance, and chapters' takeaways."""

import ast
import json
import statistics
from pathlib import Path

import pytest

from halluc_lib.core import findings, sweeps

ROOT = Path(__file__).resolve().parents[2]


def _claim(name, value, comparison=">=", threshold=0.5, baseline=0.1, kind="finding"):
    passed = {">=": value >= threshold, "<=": value <= threshold, ">": value > threshold}[comparison]
    return {
        "name": name,
        "value": value,
        "comparison": comparison,
        "threshold": threshold,
        "passed": passed,
        "baseline": baseline,
        "kind": kind,
    }


def _run(seed, acc, err, *, gain=None, scale="quick", device="cpu", error=None):
    return {
        "page": "ch_x",
        "seed": seed,
        "scale": scale,
        "device": device,
        "wall_seconds": 10.0,
        "error": error,
        "claims": [
            _claim("acc", acc),
            _claim("err", err, "<=", 0.2, baseline=0.9),
            _claim("bound holds", 1.0, ">", 0.0, baseline=None, kind="mathematics"),
        ],
        "measurements": {} if gain is None else {"gain": gain},
    }


@pytest.fixture
def sweep_dir(tmp_path):
    runs = [
        _run(2, 0.7, 0.05, gain=0.3),
        _run(0, 0.9, 0.15, gain=0.1),
        _run(1, 0.8, 0.10, gain=0.2),
        _run(0, 0.2, 0.9, scale="full", device="cuda:0"),
    ]
    (tmp_path / "ch_x.json").write_text(json.dumps({"page": "ch_x", "runs": runs}))
    return tmp_path


def test_claim_spread_gives_the_spread_the_worst_seed_and_the_null(sweep_dir):
    acc = findings.claim_spread("ch_x", "acc", sweep_dir=sweep_dir)
    assert (acc["min"], acc["median"], acc["max"]) == (0.7, 0.8, 0.9)
    assert acc["worst"] == 0.7  # ">=": the smallest value is the closest to failing
    assert acc["baseline_median"] == 0.1 and acc["seeds"] == 3 and acc["passed"]
    assert (acc["comparison"], acc["threshold"]) == (">=", 0.5)
    err = findings.claim_spread("ch_x", "err", sweep_dir=sweep_dir)
    assert err["worst"] == 0.15  # "<=": the largest value is the closest to failing
    assert findings.claim_spread("ch_x", "bound holds", sweep_dir=sweep_dir)["baseline_median"] is None
    # the full-scale GPU run is another group, and it failed there
    full = findings.claim_spread("ch_x", "acc", scale="full", device="cuda", sweep_dir=sweep_dir)
    assert full["seeds"] == 1 and not full["passed"]


def test_measure_spread_and_what_a_page_offers(sweep_dir):
    assert findings.measure_spread("ch_x", "gain", sweep_dir=sweep_dir) == {
        "min": 0.1,
        "median": 0.2,
        "max": 0.3,
        "seeds": 3,
    }
    assert findings.available("ch_x", sweep_dir=sweep_dir) == {
        "claims": ["acc", "err", "bound holds"],
        "measures": ["gain"],
    }


def test_what_the_sweep_does_not_hold_is_named_with_what_it_does(sweep_dir):
    with pytest.raises(findings.FindingNotFound, match=r"ch_x has no claim 'acc2'.*'acc', 'err'.*'gain'"):
        findings.claim_spread("ch_x", "acc2", sweep_dir=sweep_dir)
    with pytest.raises(findings.FindingNotFound, match=r"ch_x has no measure 'loss'.*its measures: \['gain'\]"):
        findings.measure_spread("ch_x", "loss", sweep_dir=sweep_dir)
    with pytest.raises(findings.FindingNotFound, match=r"ch_y: no quick-scale runs on cpu.*make seeds PAGES=ch_y"):
        findings.claim_spread("ch_y", "acc", sweep_dir=sweep_dir)
    with pytest.raises(findings.FindingNotFound, match="no full-scale runs on cpu"):
        findings.claim_spread("ch_x", "acc", scale="full", sweep_dir=sweep_dir)
    with pytest.raises(ValueError, match="scale must be one of"):
        findings.claim_spread("ch_x", "acc", scale="medium", sweep_dir=sweep_dir)


def test_all_runs_passed_fails_on_a_failed_claim_or_an_error(tmp_path):
    def write(runs):
        (tmp_path / "ch_x.json").write_text(json.dumps({"page": "ch_x", "runs": runs}))

    write([_run(0, 0.9, 0.1), _run(1, 0.8, 0.1)])
    assert findings.all_runs_passed("ch_x", sweep_dir=tmp_path)
    write([_run(0, 0.9, 0.1), _run(1, 0.3, 0.1)])  # acc fails at seed 1
    assert not findings.all_runs_passed("ch_x", sweep_dir=tmp_path)
    assert not findings.claim_spread("ch_x", "acc", sweep_dir=tmp_path)["passed"]
    write([_run(0, 0.9, 0.1), _run(1, 0.8, 0.1, error="NameError: x")])
    assert not findings.all_runs_passed("ch_x", sweep_dir=tmp_path)


def test_glue_finding_glues_the_statistic_and_says_where_it_came_from(sweep_dir, monkeypatch):
    glued = {}
    monkeypatch.setattr(findings, "glue", lambda name, value: glued.update({name: value}))
    worst = findings.glue_finding("acc_worst", "ch_x", claim="acc", stat="worst", sweep_dir=sweep_dir)
    null = findings.glue_finding("acc_null", "ch_x", claim="acc", stat="baseline_median", sweep_dir=sweep_dir)
    gain = findings.glue_finding("gain", "ch_x", measure="gain", sweep_dir=sweep_dir)
    seeds = findings.glue_finding("seeds", "ch_x", measure="gain", stat="seeds", sweep_dir=sweep_dir)
    assert glued == {"acc_worst": 0.7, "acc_null": 0.1, "gain": 0.2, "seeds": 3}
    assert worst == findings.Finding("acc_worst", "ch_x", "claim", "acc", "worst", 0.7, 3, True)
    assert gain.kind == "measure" and gain.name == "gain" and gain.stat == "median"
    table = findings.provenance([worst, null, gain, seeds])
    assert list(table.index) == ["acc_worst", "acc_null", "gain", "seeds"]
    assert table.loc["gain", "value"] == 0.2 and table.all_runs_passed.all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of claim= and measure="),
        ({"claim": "acc", "measure": "gain"}, "exactly one of claim= and measure="),
        ({"claim": "acc", "stat": "mean"}, "stat must be one of"),
        ({"measure": "gain", "stat": "worst"}, "needs a claim"),
        ({"measure": "gain", "stat": "baseline_median"}, "needs a claim"),
        ({"claim": "bound holds", "stat": "baseline_median"}, "check of mathematics"),
    ],
)
def test_glue_finding_refuses_what_it_cannot_quote(sweep_dir, monkeypatch, kwargs, message):
    monkeypatch.setattr(findings, "glue", lambda name, value: None)
    with pytest.raises(ValueError, match=message):
        findings.glue_finding("x", "ch_x", sweep_dir=sweep_dir, **kwargs)


def test_provenance_refuses_a_glue_name_quoted_twice(sweep_dir, monkeypatch):
    monkeypatch.setattr(findings, "glue", lambda name, value: None)
    twice = [findings.glue_finding("a", "ch_x", claim="acc", sweep_dir=sweep_dir)] * 2
    with pytest.raises(ValueError, match=r"more than once: \['a'\]"):
        findings.provenance(twice)
    assert findings.provenance([]).empty


def test_scoreboard_and_coverage(sweep_dir):
    board = findings.scoreboard(["ch_x"], sweep_dir=sweep_dir)
    assert board.loc["ch_x"].tolist() == [3, 1, 3, True]
    table = findings.coverage(["ch_x", "ch_never_swept"], sweep_dir)
    assert list(table.columns) == ["quick on cpu", "full on cuda"]
    assert table.loc["ch_x"].tolist() == [3, 1] and table.loc["ch_never_swept"].tolist() == [0, 0]


def test_scales_are_the_runtime_scales():
    """findings repeats runtime.SCALES so that it needs no torch; the two must agree (read without importing)."""
    tree = ast.parse((ROOT / "halluc_lib" / "core" / "runtime.py").read_text())
    assigned = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SCALES" for t in node.targets)
    ]
    assert len(assigned) == 1 and ast.literal_eval(assigned[0]) == findings.SCALES
    assert findings.check_scale("full") == "full"


def _notebook(path, cells):
    path.write_text(json.dumps({"cells": cells}))
    return path


def _md(text, tags=None):
    return {"cell_type": "markdown", "metadata": {"tags": tags} if tags else {}, "source": [text]}


def test_takeaways_reads_the_bullets_of_the_tagged_cell(tmp_path):
    box = "```{admonition} Key takeaways\n:class: tip\n- first finding,\n  continued\n- second finding\n```"
    nb = _notebook(tmp_path / "ch09_1_x.ipynb", [_md("# 9.1 X"), _md(box, ["takeaways"]), _md("## Exercises")])
    assert findings.takeaways(nb) == ["first finding, continued", "second finding"]


@pytest.mark.parametrize(
    "cells, message",
    [
        ([_md("- not tagged")], "found 0"),
        ([_md("- a", ["takeaways"]), _md("- b", ["takeaways"])], "found 2"),
        ([{"cell_type": "code", "metadata": {"tags": ["takeaways"]}, "source": ["x = 1"]}], "markdown cell"),
        ([_md("no bullets here", ["takeaways"])], "has no bullets"),
    ],
)
def test_takeaways_needs_exactly_one_tagged_markdown_cell_with_bullets(tmp_path, cells, message):
    with pytest.raises(ValueError, match=message):
        findings.takeaways(_notebook(tmp_path / "ch09_1_x.ipynb", cells))


def test_chapter_notebooks_are_the_pages_with_claims_in_reading_order(tmp_path):
    def page(name, code):
        _notebook(tmp_path / f"{name}.ipynb", [{"cell_type": "code", "metadata": {}, "source": [code]}])

    page("ch02_10_later", 'claims = Claims("ch02_10_later", settings)')
    page("ch02_2_earlier", 'claims = Claims("ch02_2_earlier", settings)')
    page("ch01_first", 'claims = Claims("ch01_first", settings)')
    page("ch07_summary", "run = summary.run(config)")  # reads other pages, checks no claims
    assert [p.stem for p in findings.chapter_notebooks(tmp_path)] == ["ch01_first", "ch02_2_earlier", "ch02_10_later"]


# --- the committed sweep ------------------------------------------------------------------------------------------

MONOFACTS_CLAIM = "GPT: share of hallucinations about people seen at most once"


def _quick_cpu_runs(page):
    records = json.loads(sweeps.sweep_path(page).read_text())["runs"]
    return [r for r in records if r["scale"] == "quick" and sweeps.device_kind(r["device"]) == "cpu"]


def test_a_claim_of_the_committed_sweep_matches_its_json():
    found = findings.claim_spread("ch02_2_monofacts", MONOFACTS_CLAIM)
    assert found["min"] <= found["median"] <= found["max"]
    values = [
        c["value"] for r in _quick_cpu_runs("ch02_2_monofacts") for c in r["claims"] if c["name"] == MONOFACTS_CLAIM
    ]
    assert found["seeds"] == len(values) >= 5
    assert found["median"] == statistics.median(values)
    assert found["worst"] == min(values)  # the claim asks for at least its threshold
    assert MONOFACTS_CLAIM in findings.available("ch02_2_monofacts")["claims"]


def test_a_measurement_of_the_committed_sweep_matches_its_json():
    found = findings.measure_spread("ch04_6_abstention", "recovered")
    values = [r["measurements"]["recovered"] for r in _quick_cpu_runs("ch04_6_abstention")]
    assert found == {"min": min(values), "median": statistics.median(values), "max": max(values), "seeds": len(values)}


def test_every_chapter_of_the_book_has_takeaways():
    notebooks = findings.chapter_notebooks(ROOT / "book")
    assert len(notebooks) >= 20
    assert all(2 <= len(findings.takeaways(nb)) <= 4 for nb in notebooks)
