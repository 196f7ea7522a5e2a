"""The benchmark's plumbing (not its speed: speed is measured by `make bench`, never asserted in a test)."""

import pandas as pd
import pytest

from halluc_lib.tools import bench


def test_benchmark_runs_the_loops_on_the_same_work_in_the_same_precision(monkeypatch):
    monkeypatch.setattr(bench.runtime, "cpu_has_native_bf16", lambda: True)  # as on the book's machine
    rows = bench.benchmark(steps=4, batch_size=4, repeats=1)
    assert set(rows.loop) == {bench.OURS, bench.TRAINER, bench.TRAINER_EAGER} and set(rows.precision) == {"bf16"}
    assert bench.summarize(rows)["ratio_to_eager_trainer"] > 0
    rows = bench.benchmark(steps=4, batch_size=4, repeats=1, precision="fp32")
    assert set(rows.loop) == {bench.OURS, bench.TRAINER} and set(rows.precision) == {"fp32"}
    assert bench.summarize(rows)["ratio_to_eager_trainer"] is None
    # the same documents, batch size and steps: real tokens agree to within the length spread of 16 documents
    tokens = rows.set_index("loop").tokens
    assert abs(tokens["halluc_lib.core.train"] - tokens["transformers.Trainer"]) < 0.5 * tokens.max()
    # from the same initial weights, four steps of the same schedule move the loss by about as much
    losses = rows.set_index("loop").mean_loss
    assert abs(losses["halluc_lib.core.train"] - losses["transformers.Trainer"]) / losses.max() < 0.1


def _rows(ours_tps, trainer_tps, ours_loss, trainer_loss):
    return pd.DataFrame(
        [
            {
                "loop": "halluc_lib.core.train",
                "tokens_per_s": ours_tps,
                "fraction_of_peak": 0.2,
                "mean_loss": ours_loss,
                "setup_seconds": 0.1,
            },
            {
                "loop": "transformers.Trainer",
                "tokens_per_s": trainer_tps,
                "fraction_of_peak": 0.1,
                "mean_loss": trainer_loss,
                "setup_seconds": 0.5,
            },
        ]
    )


def test_summary_ratio_and_loss_check_by_hand():
    s = bench.summarize(_rows(30.0, 20.0, 2.0, 2.05))
    assert s["ratio"] == pytest.approx(1.5) and s["loss_gap"] == pytest.approx(0.05 / 2.05) and s["same_loss"]
    assert not bench.summarize(_rows(30.0, 20.0, 2.0, 2.5))["same_loss"]  # a loop that learns less is not faster


def test_training_flops_by_hand():
    from halluc_lib.core import models
    from halluc_lib.core.tokenizer import world_tokenizer
    from halluc_lib.core.world import bucket_world

    tok = world_tokenizer(bucket_world((1,), 2, seed=0))
    model = models.tiny_gpt(tok)
    params = sum(p.numel() for p in model.parameters())
    c = model.config
    assert bench.training_flops(model, 10, 8.0) == 10 * (6 * params + 12 * c.n_layer * 8.0 * c.n_embd)


def test_log_interval_divides_steps():
    assert bench._log_every(100) == 25 and bench._log_every(30) == 10 and bench._log_every(7) == 1


def test_main_prints_the_ratio_the_fractions_of_peak_and_the_loss_check(capsys, monkeypatch):
    fake = _rows(10.0, 5.0, 1.0, 1.0).assign(peak_flops_per_s=1e10, precision="fp32")
    monkeypatch.setattr(bench, "benchmark", lambda **kw: fake)
    breakdown = {"steps": 1, "matmul_share": 0.5, "matmul_fraction_of_peak": 0.8, "floor_share": 0.4}
    monkeypatch.setattr(bench, "step_breakdown", lambda **kw: {**breakdown, "largest_others": [("aten::gelu", 0.1)]})
    assert bench.main(["--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "precision: fp32" in out
    assert "ratio: 2.00x" in out and "ours 20.0%, Trainer 10.0%" in out and "same work" in out
    assert "matrix products: 50% of the time, at 80% of the peak" in out and "aten::gelu 10%" in out
    unequal = _rows(10.0, 5.0, 1.0, 2.0).assign(peak_flops_per_s=1e10, precision="fp32")
    monkeypatch.setattr(bench, "benchmark", lambda **kw: unequal)
    assert bench.main(["--steps", "1"]) == 1  # not the same work: the comparison does not count


def test_benchmark_names_the_device_and_precision_it_rejects():
    with pytest.raises(ValueError, match="device"):
        bench.benchmark(steps=1, device="tpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        bench.benchmark(steps=1, precision="fp8")


def test_time_breakdown_by_hand():
    ops = pd.DataFrame(
        [
            {"op": "aten::mm", "seconds": 2.0, "flops": 8e9},
            {"op": "aten::addmm", "seconds": 2.0, "flops": 8e9},
            {"op": "aten::gelu", "seconds": 1.0, "flops": 0},
            {"op": "aten::copy_", "seconds": 3.0, "flops": 0},
        ]
    )
    b = bench.time_breakdown(ops, wall_seconds=10.0, peak_flops_per_s=8e9, top=1)
    # 4 s of matrix products doing 16 GFLOP at a peak of 8 GFLOP/s: at half the peak, and 2 s at the peak
    assert b["matmul_share"] == pytest.approx(0.4) and b["matmul_fraction_of_peak"] == pytest.approx(0.5)
    assert b["floor_share"] == pytest.approx(0.2)
    assert b["largest_others"] == [("aten::copy_", pytest.approx(0.3))]  # the largest non-matmul operator only
    with pytest.raises(ValueError, match="wall_seconds"):
        bench.time_breakdown(ops, wall_seconds=0, peak_flops_per_s=1.0)


def test_step_breakdown_profiles_the_loop_and_counts_its_matmul_flops():
    b = bench.step_breakdown(steps=2, batch_size=4, peak_flops_per_s=1e12)
    # the profiler saw the loop's matrix products and their FLOPs, and they are not among the "others"
    assert b["matmul_share"] > 0 and b["matmul_fraction_of_peak"] > 0
    assert b["floor_share"] == pytest.approx(b["matmul_share"] * b["matmul_fraction_of_peak"])
    assert not {op for op, _ in b["largest_others"]} & set(bench.MATMUL_OPS)
