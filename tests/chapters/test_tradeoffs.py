import math

import pytest

from halluc_lib.chapters import tradeoffs
from halluc_lib.core import ledger


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
        ledger.record(_tradeoff(page, f"mitigation of {page}"))
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
            ledger.record(_tradeoff(page, f"mitigation of {page}"))

    monkeypatch.setattr(tradeoffs, "run_pages", fake_run_pages)
    run = tradeoffs.run(tradeoffs.Config.for_scale("full"), seed=3, device="cpu")
    assert calls == [(list(ledger.PAGES), {"seed": 3, "scale": "full", "device": "cpu"})]
    assert run.executed == list(ledger.PAGES) and len(run.recorded) == len(ledger.PAGES)
    with pytest.raises(ValueError, match="scale"):
        tradeoffs.Config(scale="huge")
