"""Experiment tracking: what the training loop logs as it runs, to TensorBoard or to Weights & Biases.

:func:`~halluc_lib.core.train.train` takes a ``tracker`` and hands it, as they happen, the training rows (mean
loss and learning rate every ``log_every`` steps) and the evaluation rows (whatever ``eval_fn`` returns). A
tracker is any object with ``log(rows, step, prefix)`` and ``close()``; two are here:

* :class:`TensorBoardTracker` writes an event file with ``torch.utils.tensorboard.SummaryWriter`` (one folder per
  run; open it with ``tensorboard --logdir <folder>``), and :func:`read_scalars` reads such a file back with
  TensorBoard's own event reader, so a page can plot what the reader will see in TensorBoard;
* :class:`WandbTracker` logs the same rows to Weights & Biases in offline mode (no account, no network; sync
  later with ``wandb sync``). ``wandb`` is optional: without it, :func:`make_tracker` says so and how to get it.

Tracking is opt-in (``tracker=None`` logs nothing): the pages' results never depend on it.
"""

from __future__ import annotations

import importlib.util
import numbers
import os
from pathlib import Path

import pandas as pd

#: The trackers :func:`make_tracker` builds, by name.
TRACKERS = ("tensorboard", "wandb")
#: The environment variable naming the folder runs are logged under (``make`` sets it to ``_build/runs``).
RUNS_ENV = "HALLUC_RUNS"


def runs_root() -> Path:
    """Where runs are logged: ``$HALLUC_RUNS`` if set, else ``runs/`` in the working directory (TensorBoard's
    own default), one sub-folder per run."""
    return Path(os.environ.get(RUNS_ENV) or "runs")


def scalar_items(row: dict, prefix: str) -> dict[str, float]:
    """The numeric values of one logged row as ``{tag: value}``. Tags are ``prefix/column``; the row's text
    values (a bucket's name, a split) go in the tag, so rows of one step for different groups stay apart:
    ``{"bucket": "rare", "accuracy": 0.4}`` → ``{"eval/rare/accuracy": 0.4}``."""
    labels = [str(v) for k, v in row.items() if k != "step" and isinstance(v, str)]
    stem = "/".join([prefix, *labels])
    return {
        f"{stem}/{k}": float(v)
        for k, v in row.items()
        if k != "step" and isinstance(v, numbers.Real) and not isinstance(v, bool)
    }


class TensorBoardTracker:
    """Logs rows as TensorBoard scalars in ``log_dir`` (created; one folder per run)."""

    def __init__(self, log_dir: str | os.PathLike):
        from torch.utils.tensorboard import SummaryWriter  # deferred: loads tensorboard only when tracking is on

        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log(self, rows: list[dict], step: int, prefix: str) -> None:
        """Write every numeric value of ``rows`` as a scalar at ``step`` (tags from :func:`scalar_items`)."""
        for row in rows:
            for tag, value in scalar_items(row, prefix).items():
                self.writer.add_scalar(tag, value, global_step=step)

    def close(self) -> None:
        """Flush the event file to disk and close it (the training loop does this when the run ends)."""
        self.writer.flush()
        self.writer.close()


class WandbTracker:
    """Logs rows to Weights & Biases in offline mode: a run folder under ``log_dir``, no account, no network."""

    def __init__(self, log_dir: str | os.PathLike, project: str = "hallucination-book", name: str | None = None):
        import wandb  # optional: the book does not install it (make_tracker says how)

        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=project, name=name, dir=str(self.log_dir), mode="offline", reinit=True)

    def log(self, rows: list[dict], step: int, prefix: str) -> None:
        """Log the numeric values of ``rows`` as one W&B history entry at ``step``."""
        values: dict[str, float] = {}
        for row in rows:
            values.update(scalar_items(row, prefix))
        if values:
            self.run.log(values, step=step)

    def close(self) -> None:
        """Finish the offline run (its folder can then be uploaded with ``wandb sync``)."""
        self.run.finish()


def make_tracker(kind: str, log_dir: str | os.PathLike):
    """A tracker by name (one of :data:`TRACKERS`) writing under ``log_dir``."""
    if kind not in TRACKERS:
        raise ValueError(f"kind must be one of {', '.join(TRACKERS)}; got {kind!r}")
    if kind == "wandb":
        if importlib.util.find_spec("wandb") is None:
            raise ModuleNotFoundError(
                "kind='wandb' needs the wandb package, which the book does not install: `pip install wandb`. "
                "It logs offline (no account needed); use kind='tensorboard' otherwise."
            )
        return WandbTracker(log_dir)
    return TensorBoardTracker(log_dir)


def read_scalars(log_dir: str | os.PathLike) -> pd.DataFrame:
    """Every scalar in the TensorBoard event files under ``log_dir``, read with TensorBoard's own reader
    (``EventAccumulator``), as rows ``tag, step, value`` sorted by tag and step."""
    # deferred: TensorBoard's reader loads only when a page reads a run back
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log_dir = Path(log_dir)
    if not any(log_dir.glob("events.out.tfevents.*")):
        raise FileNotFoundError(f"log_dir: no TensorBoard event file in {log_dir}")
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every point
    events.Reload()
    rows = [
        {"tag": tag, "step": e.step, "value": e.value} for tag in events.Tags()["scalars"] for e in events.Scalars(tag)
    ]
    return pd.DataFrame(rows, columns=["tag", "step", "value"]).sort_values(["tag", "step"], ignore_index=True)
