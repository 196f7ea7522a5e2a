"""The trackers the training loop logs to: TensorBoard's event files read back as written, W&B's offline run
(with a stand-in ``wandb`` module: the book does not install it), and clear errors."""

import sys
import types

import pandas as pd
import pytest
import torch

from halluc_lib.core import tracking
from halluc_lib.core.batching import TensorBatches
from halluc_lib.core.models import DigitMLP
from halluc_lib.core.train import TrainConfig, train


def test_scalar_items_put_a_rows_text_in_the_tag_and_keep_numbers():
    row = {"step": 10, "domain": "rare", "accuracy": 0.5, "n": 3, "ok": True}
    assert tracking.scalar_items(row, "eval") == {"eval/rare/accuracy": 0.5, "eval/rare/n": 3.0}
    assert tracking.scalar_items({"step": 1, "loss": 2.0}, "train") == {"train/loss": 2.0}


def _tiny_run(tmp_path, tracker):
    torch.manual_seed(0)
    pixels = torch.randn(64, 2, 8, 8)
    data = {"pixels": pixels, "labels": (pixels.sum((1, 2, 3)) > 0).long()}

    def evaluate(model, step):
        return [{"split": "all", "accuracy": float(step)}, {"split": "half", "accuracy": step / 2}]

    config = TrainConfig(steps=20, log_every=5, eval_every=10)
    return train(
        DigitMLP(),
        TensorBatches(data, batch_size=16),
        config,
        device="cpu",
        eval_fn=evaluate,
        tracker=tracker,
        progress=False,
    )


def test_the_loop_logs_to_tensorboard_and_the_event_file_reads_back_as_logged(tmp_path):
    result = _tiny_run(tmp_path, tracking.TensorBoardTracker(tmp_path / "run"))
    scalars = tracking.read_scalars(tmp_path / "run")
    assert set(scalars.tag) == {"train/loss", "train/lr", "train/epoch", "eval/all/accuracy", "eval/half/accuracy"}
    loss = scalars[scalars.tag == "train/loss"]
    assert list(loss.step) == list(result.history.step) == [5, 10, 15, 20]
    assert loss.value.to_numpy() == pytest.approx(result.history.loss.to_numpy(), rel=1e-6)
    assert list(scalars[scalars.tag == "eval/half/accuracy"].value) == [0.0, 5.0, 10.0]


def test_reading_a_folder_without_events_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="log_dir: no TensorBoard event file"):
        tracking.read_scalars(tmp_path)


def test_make_tracker_names_the_accepted_kinds_and_says_how_to_get_wandb(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="kind must be one of tensorboard, wandb"):
        tracking.make_tracker("mlflow", tmp_path)
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install wandb"):
        tracking.make_tracker("wandb", tmp_path)
    assert isinstance(tracking.make_tracker("tensorboard", tmp_path / "tb"), tracking.TensorBoardTracker)


def test_the_wandb_tracker_logs_offline_one_dict_per_step(tmp_path, monkeypatch):
    logged, settings = [], {}

    class FakeRun:
        def log(self, values, step):
            logged.append((step, values))

        def finish(self):
            logged.append("finished")

    fake = types.SimpleNamespace(init=lambda **kw: settings.update(kw) or FakeRun())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: object())
    _tiny_run(tmp_path, tracking.make_tracker("wandb", tmp_path / "wandb"))
    assert settings["mode"] == "offline" and settings["dir"] == str(tmp_path / "wandb")
    assert logged[-1] == "finished"
    steps = [entry for entry in logged[:-1]]
    assert (10, {"eval/all/accuracy": 10.0, "eval/half/accuracy": 5.0}) in steps
    assert any(step == 5 and "train/loss" in values for step, values in steps)


def test_runs_are_logged_under_halluc_runs_or_in_runs(monkeypatch, tmp_path):
    monkeypatch.setenv(tracking.RUNS_ENV, str(tmp_path))
    assert tracking.runs_root() == tmp_path
    monkeypatch.delenv(tracking.RUNS_ENV)
    assert str(tracking.runs_root()) == "runs"


def test_read_scalars_returns_an_empty_frame_with_columns_for_an_empty_run(tmp_path):
    tracker = tracking.TensorBoardTracker(tmp_path)
    tracker.close()
    frame = tracking.read_scalars(tmp_path)
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["tag", "step", "value"] and frame.empty
