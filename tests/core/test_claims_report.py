import json

import pytest

from halluc_lib.core import claims, report, runtime


def test_claim_passes_and_fails_with_a_message_naming_everything():
    c = claims.check_claim("accuracy at k=64", 0.95, ">=", 0.9, baseline=0.1)
    assert c.passed and c.baseline == 0.1 and c.kind == "finding"
    with pytest.raises(AssertionError, match=r"claim failed: accuracy at k=64: measured 0.85, expected >= 0.9"):
        claims.check_claim("accuracy at k=64", 0.85, ">=", 0.9, baseline=0.1)
    with pytest.raises(ValueError, match="comparison must be one of"):
        claims.check_claim("x", 1, "==", 1, baseline=0)
    with pytest.raises(ValueError, match="name"):
        claims.check_claim("", 1, ">", 0, baseline=0)


def test_a_claim_its_null_model_also_passes_shows_nothing():
    with pytest.raises(AssertionError, match=r"claim shows nothing: gain: the null model's value 0.3 also satisfies"):
        claims.check_claim("gain", 0.5, ">=", 0.2, baseline=0.3)
    with pytest.raises(ValueError, match="baseline .* is required"):
        claims.check_claim("gain", 0.5, ">=", 0.2)
    # a check of mathematics has no null model, and may not be given one
    assert claims.check_claim("violations", 0, "<=", 0, kind="mathematics").baseline is None
    with pytest.raises(ValueError, match="no baseline"):
        claims.check_claim("violations", 0, "<=", 0, baseline=1, kind="mathematics")
    with pytest.raises(ValueError, match="kind must be one of"):
        claims.check_claim("violations", 0, "<=", 0, kind="theorem")


def test_claims_record_for_the_status_page(tmp_path, monkeypatch):
    record = tmp_path / "page.json"
    monkeypatch.setenv(claims.RECORD_ENV, str(record))
    settings = runtime.setup(seed=2, scale="quick", device="cpu", threads=1)
    page = claims.Claims("ch_test", settings)
    page.check("a", 1.0, ">", 0.5, baseline=0.5)
    page.check("b", 0.1, "<=", 0.2, baseline=0.4)
    page.check_math("violations", 0, "<=", 0)
    page.measure("gain", 0.25)
    table = page.finish()
    assert table.passed.all() and len(table) == 3
    assert list(table.kind) == ["finding", "finding", "mathematics"]
    data = json.loads(record.read_text())
    assert data["page"] == "ch_test" and data["seed"] == 2 and data["scale"] == "quick"
    assert data["device"] == "cpu" and data["peak_memory_mib"] > 0 and len(data["claims"]) == 3
    assert [c["baseline"] for c in data["claims"]] == [0.5, 0.4, None]
    assert data["measurements"] == {"gain": 0.25}
    assert data["packages"]["torch"].startswith("2.") and set(data["packages"]) == set(claims.RECORDED_PACKAGES)
    assert data["cpu_capability"] and data["machine"]
    assert data["cpu_native_bf16"] == runtime.cpu_has_native_bf16()  # whether CPU training ran in bf16
    assert data["ran_on"] == "cpu"  # where it ran: where it was asked to, unless the page says otherwise
    elsewhere = claims.Claims("ch_test", runtime.setup(device="cpu", threads=1), ran_on="meta").record()
    assert (elsewhere["device"], elsewhere["ran_on"]) == ("cpu", "meta")
    runtime.set_threads()


def test_a_failing_claim_is_recorded_before_it_raises(tmp_path, monkeypatch):
    record = tmp_path / "page.json"
    monkeypatch.setenv(claims.RECORD_ENV, str(record))
    page = claims.Claims("ch_test")
    page.check("a", 1.0, ">", 0.5, baseline=0.0)
    with pytest.raises(AssertionError, match="claim failed: b"):
        page.check("b", 0.3, "<=", 0.2, baseline=0.4)
    data = json.loads(record.read_text())
    assert [(c["name"], c["passed"]) for c in data["claims"]] == [("a", True), ("b", False)]


def test_claims_without_settings_or_record(monkeypatch):
    monkeypatch.delenv(claims.RECORD_ENV, raising=False)
    page = claims.Claims("p")
    page.check("a", 1, ">=", 1, baseline=0)
    assert page.record()["seed"] is None
    assert len(page.finish()) == 1


def test_glue_outside_a_kernel_is_silent(monkeypatch):
    import numpy as np

    assert report.glue("x", 3) is None
    seen = {}
    monkeypatch.setattr(report, "_myst_glue", lambda name, value, display: seen.update({name: value}))
    monkeypatch.setattr(report, "_in_kernel", lambda: True)
    report.glue("y", np.float64(0.5))
    assert seen == {"y": 0.5} and isinstance(seen["y"], float)
    with pytest.raises(ValueError, match="name"):
        report.glue("", 1)
