import math

import pandas as pd
import pytest

from halluc_lib.chapters import experiment_tracking as et


def test_first_step_reaching_a_target():
    curve = pd.DataFrame({"step": [0, 10, 20, 30], "value": [0.1, 0.6, 0.9, 0.7]})
    assert et.first_step_reaching(curve, 0.8) == 20
    assert et.first_step_reaching(curve, 0.95) == math.inf


def test_a_logged_run_reads_back_per_domain_and_the_rare_domain_is_learned_later(tmp_path):
    """A short run of the page: every share gets its own folder of events, the curves hold both domains'
    accuracy at every evaluation, and with no minority data the minority is learned later (or never)."""
    config = et.Config(shares=(0.0, 0.5), steps=120, eval_every=20, target=0.75)
    run = et.run(config, seed=0, device="cpu", log_dir=tmp_path)
    assert set(run.log_dirs) == {0.0, 0.5} and all(p.parent == tmp_path for p in run.log_dirs.values())
    accuracy = run.curves[run.curves.tag == "eval/minority/accuracy"]
    assert list(accuracy[accuracy.share == 0.5].step) == [0, 20, 40, 60, 80, 100, 120]
    learned = run.learned.set_index(["share", "domain"]).steps_to_target
    assert learned[(0.0, "minority")] > learned[(0.0, "majority")]
    # a second run into the same folder replaces the first rather than adding to it
    again = et.run(config, seed=0, device="cpu", log_dir=tmp_path)
    assert len(again.curves) == len(run.curves)


def test_config():
    assert et.Config.for_scale("full").steps > et.Config.for_scale("quick").steps
    with pytest.raises(ValueError, match="shares must name"):
        et.Config(shares=())
    with pytest.raises(ValueError, match="target"):
        et.Config(target=1.5)
    with pytest.raises(TypeError, match="config must be an experiment_tracking.Config"):
        et.run({})


def test_a_run_logs_to_the_tracker_it_is_given_instead(tmp_path):
    class Rows:
        def __init__(self):
            self.rows, self.closed = [], False

        def log(self, rows, step, prefix):
            self.rows += [(prefix, step, row) for row in rows]

        def close(self):
            self.closed = True

    tracker = Rows()
    et.logged_run(0.3, et.Config(steps=40, eval_every=20), tmp_path / "unused", seed=0, device="cpu", tracker=tracker)
    assert tracker.closed and not (tmp_path / "unused").exists()
    assert {(prefix, step) for prefix, step, _ in tracker.rows} >= {("eval", 0), ("eval", 20), ("train", 40)}
    with pytest.raises(ValueError, match="lr must be a positive number"):
        et.Config(lr=0)
