import math

import pytest

from halluc_lib.core import ledger


def _tradeoff(**changes):
    fields = dict(
        mitigation="group DRO",
        page="ch04_1_balancing",
        task="coloured digits",
        error_name="worst-group error",
        error=(0.9, 0.3),
        accuracy=(0.7, 0.65),
        compute_ratio=1.2,
        compute_unit="training wall time",
        needs="group labels",
    )
    return ledger.Tradeoff(**(fields | changes))


def test_record_and_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    assert ledger.load() == []
    ledger.record(_tradeoff(page="ch04_6_abstention", mitigation="IDK fine-tuning"))
    path = ledger.record(_tradeoff())
    assert path.parent == tmp_path / "tradeoffs"
    loaded = ledger.load()
    assert [t.page for t in loaded] == ["ch04_1_balancing", "ch04_6_abstention"]
    assert loaded[0].error == (0.9, 0.3) and math.isnan(loaded[0].ece[0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"page": "ch09_1_outlook"}, "page must be one of"),
        ({"error": (0.1,)}, "error must be a"),
        ({"compute_ratio": 0.0}, "compute_ratio must be a positive number"),
    ],
)
def test_tradeoff_is_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        _tradeoff(**changes)


def test_record_needs_a_tradeoff():
    with pytest.raises(TypeError, match="tradeoff must be a Tradeoff"):
        ledger.record({"mitigation": "x"})
