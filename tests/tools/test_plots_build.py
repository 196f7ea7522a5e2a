import json

import matplotlib
import pandas as pd
import pytest

matplotlib.use("Agg")

from halluc_lib.core import plots  # noqa: E402
from halluc_lib.tools import build  # noqa: E402


def test_plot_helpers_draw_from_tables():
    plots.use_theme()
    table = pd.DataFrame({"k": [0, 1, 2], "rate": [0.1, 0.5, 0.9], "low": [0.0, 0.4, 0.8], "high": [0.2, 0.6, 1.0]})
    ax = plots.rate_with_interval(table, "k", chance=0.05, label="acc")
    assert len(ax.lines) >= 2
    ax = plots.rate_with_interval(table.assign(g=["a", "a", "b"]), "k", hue="g")
    assert ax.get_legend() is not None
    evals = pd.DataFrame({"step": [0, 1, 0, 1], "accuracy": [0, 0.5, 0, 1], "k": ["0", "0", "8", "8"]})
    assert plots.lines_over_steps(evals, "accuracy", "k", title="t").get_title() == "t"
    rel = pd.DataFrame({"confidence": [0.2, 0.8], "accuracy": [0.1, 0.9], "count": [3, 5]})
    assert plots.reliability_diagram(rel, label="m").get_xlim() == (0, 1)
    ax = plots.flow_diagram({"a": (0.2, 0.5), "b": (0.8, 0.5)}, [("a", "b")], highlight=["b"])
    assert [t.get_text() for t in ax.texts if t.get_text()] == ["a", "b"]
    with pytest.raises(ValueError, match="edges name nodes"):
        plots.flow_diagram({"a": (0, 0)}, [("a", "c")])


def test_toc_lists_every_page_and_notebooks_exist():
    files = build.toc_files()
    assert files[0] == "book/index" and "book/ch02_1_exposure" in files and "book/status" in files
    assert all((build.ROOT / f"{f}.ipynb").exists() or (build.ROOT / f"{f}.md").exists() for f in files)
    assert [p.stem for p in build.notebooks()][:2] == ["ch01_concepts", "ch02_1_exposure"]


def _record(page):
    return {
        "page": page,
        "seed": 0,
        "scale": "quick",
        "device": "cpu",
        "threads": 2,
        "version": "0.1.0",
        "seconds": 12.0,
        "peak_memory_mib": 500.0,
        "claims": [{"name": "c", "value": 0.95, "comparison": ">=", "threshold": 0.9, "passed": True}],
    }


def test_status_page_and_staging(tmp_path):
    executed = tmp_path / "executed"
    for nb in build.notebooks():
        target = executed / nb.relative_to(build.ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"cells": [], "metadata": {"papermill": {"duration": 42.0}}}))
        (executed / "records").mkdir(exist_ok=True)
        (executed / "records" / f"{nb.stem}.json").write_text(json.dumps(_record(nb.stem)))
    records = build.read_records(executed)
    assert [r["wall_seconds"] for r in records] == [42.0] * len(records)
    text = build.status_markdown(records)
    assert "| ch01_concepts | 42 | 0 | quick | cpu | 2 | 500 | 0.1.0 | 1/1 passed |" in text
    assert "| ch01_concepts | c | 0.95 | >= 0.9 |" in text
    assert "No page" in build.status_markdown([])
    piped = _record("p")
    piped["claims"][0]["name"] = "|a - b|"
    assert "| p | \\|a - b\\| | 0.95 | >= 0.9 |" in build.status_markdown([piped])
    machine = {"machine": "x86_64", "cpu_capability": "AVX512"}
    native = build.environment_markdown([_record("a") | machine | {"cpu_native_bf16": True}])
    emulated = build.environment_markdown([_record("b") | machine | {"cpu_native_bf16": False}])
    assert "x86_64 (AVX512, native bf16)" in native and "x86_64 (AVX512, no native bf16)" in emulated
    assert "x86_64 (AVX512) |" in build.environment_markdown([_record("c") | machine])  # records made before it
    moved = _record("m") | {"device": "cuda:0", "ran_on": "cpu"}
    assert "| m | " in build.status_markdown([moved]) and "cpu (asked: cuda:0)" in build.status_markdown([moved])
    site = build.stage(tmp_path / "site", executed)
    status = (site / "book" / "status.md").read_text()
    assert build.STATUS_MARKER not in status and "ch02_1_exposure" in status
    assert (site / "_config.yml").exists() and (site / "book" / "references.bib").exists()
    assert json.loads((site / "book" / "ch01_concepts.ipynb").read_text())["metadata"]["papermill"]


def test_stage_requires_executed_notebooks(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `python -m halluc_lib.tools.build execute` first"):
        build.stage(tmp_path / "site", tmp_path / "nothing")


def test_status_command_prints(capsys, monkeypatch):
    monkeypatch.setattr(build, "read_records", lambda *a, **k: [_record("p")])
    assert build.main(["status"]) == 0
    assert "| p |" in capsys.readouterr().out
