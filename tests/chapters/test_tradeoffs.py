import json
import math
import re

import pytest

from halluc_lib.chapters import tradeoffs
from halluc_lib.core import ledger
from halluc_lib.tools.build import ROOT


def _tradeoff(page, mitigation):
    return ledger.Tradeoff(
        mitigation=mitigation,
        page=page,
        task="a task",
        error_name="an error",
        error=(0.9, 0.3),
        compute_ratio=1.2,
        compute_unit="training wall time",
        needs="nothing",
    )


def test_table_and_missing_pages():
    recorded = [_tradeoff("ch04_1_balancing", "group DRO"), _tradeoff("ch04_6_abstention", "IDK fine-tuning")]
    assert tradeoffs.missing_pages(recorded) == [p for p in ledger.PAGES if p not in {r.page for r in recorded}]
    table = tradeoffs.table(recorded)
    assert list(table.section) == ["4.1", "4.6"] and table.loc[0, "error after"] == 0.3
    assert math.isnan(table.loc[0, "ECE before"]) and math.isnan(table.loc[0, "accuracy after"])
    assert tradeoffs.section("ch04_12_x") == "4.12"


def test_run_reads_the_ledger_and_executes_nothing_when_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    for page in ledger.PAGES:
        ledger.record(_tradeoff(page, f"mitigation of {page}"), seed=0, scale="quick")
    executed = []
    monkeypatch.setattr(tradeoffs, "run_pages", lambda pages, *a, **k: executed.extend(pages))
    run = tradeoffs.run(tradeoffs.Config.for_scale("quick"), seed=0)
    assert executed == [] and run.executed == [] and len(run.table) == len(ledger.PAGES)


def test_run_executes_the_missing_pages(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    calls = []

    def fake_run_pages(pages, book_dir, **parameters):
        calls.append((list(pages), parameters))
        for page in pages:
            ledger.record(_tradeoff(page, f"mitigation of {page}"), seed=parameters["seed"], scale=parameters["scale"])

    monkeypatch.setattr(tradeoffs, "run_pages", fake_run_pages)
    run = tradeoffs.run(tradeoffs.Config.for_scale("full"), seed=3, device="cpu")
    assert calls == [(list(ledger.PAGES), {"seed": 3, "scale": "full", "device": "cpu"})]
    assert run.executed == list(ledger.PAGES) and len(run.recorded) == len(ledger.PAGES)
    with pytest.raises(ValueError, match="scale"):
        tradeoffs.Config(scale="huge")


def test_every_recorded_mitigation_is_a_row_even_two_of_one_page(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    for page in ledger.PAGES:
        ledger.record(_tradeoff(page, f"mitigation of {page}"), seed=0, scale="quick")
    ledger.record(_tradeoff("ch04_1_balancing", "a second mitigation"), seed=0, scale="quick")
    monkeypatch.setattr(tradeoffs, "run_pages", lambda *a, **k: pytest.fail("no record is missing"))
    run = tradeoffs.run(tradeoffs.Config.for_scale("quick"), seed=0)
    assert len(run.table) == len(ledger.PAGES) + 1
    # in book order, then by name
    assert run.table.mitigation.tolist()[:2] == ["a second mitigation", "mitigation of ch04_1_balancing"]


def test_the_page_quotes_only_mitigations_that_chapter_4_records():
    """Chapter 4.7 quotes nine mitigations by name; each must be one a chapter module records in the ledger."""
    recorded = set()
    for module in (ROOT / "halluc_lib" / "chapters").glob("*.py"):
        recorded |= set(re.findall(r'mitigation="([^"]+)"', module.read_text()))
    cells = json.loads((ROOT / "book" / "ch04_7_tradeoffs.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    quoted = set(re.findall(r'\("\w+", "([^"]+)"\)', code)) | set(re.findall(r'rows\.loc\["([^"]+)"', code))
    assert len(quoted) == 9 and quoted <= recorded, quoted - recorded
