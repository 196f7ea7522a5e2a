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
    assert ledger.load(seed=0, scale="quick") == []
    ledger.record(_tradeoff(page="ch04_6_abstention", mitigation="IDK fine-tuning"), seed=0, scale="quick")
    path = ledger.record(_tradeoff(), seed=0, scale="quick")
    assert path.parent == tmp_path / "tradeoffs" / "quick" / "seed0"
    loaded = ledger.load(seed=0, scale="quick")
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


def test_each_seed_and_scale_reads_only_its_own_records(tmp_path, monkeypatch):
    """A seed sweep runs 4.1-4.6 at every seed before it runs 4.7: seed 0's table must not show seed 4's numbers."""
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    for seed in range(3):
        ledger.record_all([_tradeoff(error=(0.9, seed / 10))], seed=seed, scale="quick")
    ledger.record(_tradeoff(error=(0.9, 0.5)), seed=0, scale="full")
    assert [t.error[1] for seed in range(3) for t in ledger.load(seed=seed, scale="quick")] == [0.0, 0.1, 0.2]
    assert [t.error[1] for t in ledger.load(seed=0, scale="full")] == [0.5]
    assert ledger.load(seed=3, scale="quick") == []


def test_record_needs_a_tradeoff_a_seed_and_a_scale():
    with pytest.raises(TypeError, match="tradeoff must be a Tradeoff"):
        ledger.record({"mitigation": "x"}, seed=0, scale="quick")
    with pytest.raises(ValueError, match="seed must be >= 0"):
        ledger.record(_tradeoff(), seed=-1, scale="quick")
    with pytest.raises(TypeError, match="seed must be an integer"):
        ledger.load(seed="0", scale="quick")
    with pytest.raises(ValueError, match="scale must be one of"):
        ledger.load(seed=0, scale="huge")
