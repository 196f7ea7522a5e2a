"""The benchmark's plumbing (not its speed: speed is measured by `make bench`, never asserted in a test)."""

import pytest

from halluc_lib.tools import bench


def test_benchmark_runs_both_loops_on_the_same_work():
    rows = bench.benchmark(steps=2, batch_size=4, repeats=1)
    assert set(rows.loop) == {"halluc_lib.core.train", "transformers.Trainer"}
    assert (rows.tokens > 0).all() and (rows.tokens_per_s > 0).all()
    summary = bench.summarize(rows)
    assert summary["ratio"] == summary["ours_tokens_per_s"] / summary["trainer_tokens_per_s"]


def test_log_interval_divides_steps():
    assert bench._log_every(100) == 25 and bench._log_every(30) == 10 and bench._log_every(7) == 1


def test_main_prints_the_ratio(capsys, monkeypatch):
    import pandas as pd

    fake = pd.DataFrame(
        [
            {"loop": "halluc_lib.core.train", "tokens": 10, "seconds": 1.0, "mean_loss": 1.0, "tokens_per_s": 10.0},
            {"loop": "transformers.Trainer", "tokens": 10, "seconds": 2.0, "mean_loss": 1.0, "tokens_per_s": 5.0},
        ]
    )
    monkeypatch.setattr(bench, "benchmark", lambda **kw: fake)
    assert bench.main(["--steps", "1"]) == 0
    assert "ratio: 2.00x" in capsys.readouterr().out


def test_benchmark_names_the_device_it_rejects():
    with pytest.raises(ValueError, match="device"):
        bench.benchmark(steps=1, device="tpu")
