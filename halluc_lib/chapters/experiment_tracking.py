"""Chapter 6.4: the tools of §7 — watching a run in TensorBoard, and what a logged curve shows that a final score
hides.

The source's §7 lists TensorBoard, Weights & Biases and Jupyter, and the BERT, GPT-2 and AdaLoRA papers. This page
uses the tools. The book's one training loop hands its rows to a tracker (:mod:`halluc_lib.core.tracking`); here
it logs chapter 2.4's digit classifier, trained with a rare domain (inverted ink) at 1% of the training data and,
for comparison, at 30%, evaluated on held-out digits of both domains every ``eval_every`` steps. The page reads the
event files back with TensorBoard's own reader, so what it plots is what the TensorBoard window shows. The curves
answer a question the final accuracies cannot: *when* was each domain learned?
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..core import tracking
from ..core.batching import TensorBatches
from ..core.classify import accuracy, model_inputs
from ..core.models import DigitMLP
from ..core.recipes import CLASSIFIER_PRECISION
from ..core.runtime import Device, check_positive_int, check_probability, check_scale, check_shares
from ..core.train import TrainConfig, train
from ..datasets.digits import domain_shifted_digits

#: The domains every evaluation scores, as chapter 2.4 names them.
DOMAINS = ("majority", "minority")


@dataclass(frozen=True)
class Config:
    """The minority shares to train at, how long and at what learning rate (chapter 2.4's: plain AdamW without
    weight decay), how often to evaluate, and the held-out accuracy that counts as learned."""

    shares: tuple[float, ...] = (0.01, 0.3)
    steps: int = 600
    eval_every: int = 10
    target: float = 0.8
    lr: float = 3e-3

    def __post_init__(self):
        check_shares("shares", self.shares)
        check_positive_int("steps", self.steps)
        check_positive_int("eval_every", self.eval_every)
        check_probability("target", self.target)
        if not self.lr > 0:
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 600 steps per run; full: 3,000, evaluated every 25."""
        return cls() if check_scale(scale) == "quick" else cls(steps=3000, eval_every=25)


@dataclass
class Run:
    """``curves``: every scalar read back from the runs' event files (share, tag, step, value); ``learned``: per
    share and domain, the first logged step at which accuracy reached the target (``inf``: not within the run)
    and the final accuracy; ``log_dirs``: each share's run folder, for ``tensorboard --logdir``."""

    curves: pd.DataFrame
    learned: pd.DataFrame
    log_dirs: dict[float, Path]


def first_step_reaching(curve: pd.DataFrame, target: float) -> float:
    """The first ``step`` of ``curve`` (rows ``step``, ``value``) whose value is at least ``target``; ``inf`` if
    none is."""
    reached = curve[curve.value >= target]
    return float(reached.step.min()) if len(reached) else math.inf


def logged_run(
    share: float, config: Config, log_dir: Path, *, seed: int = 0, device: Device = "auto", tracker=None
) -> None:
    """Train the colour-blind digit MLP with the minority at ``share`` and log it to TensorBoard in ``log_dir``
    (emptied first, so the folder holds this run alone): training loss and learning rate, and accuracy on each
    domain every ``config.eval_every`` steps. Another ``tracker`` (e.g. W&B's) may be given instead; the loop
    closes it at the end."""
    data = domain_shifted_digits(share, seed=seed)

    def evaluate(model, step):
        return [{"domain": domain, "accuracy": accuracy(model, data[f"test {domain}"])} for domain in DOMAINS]

    if tracker is None:
        shutil.rmtree(log_dir, ignore_errors=True)
        tracker = tracking.TensorBoardTracker(log_dir)
    torch.manual_seed(seed)
    model = DigitMLP(color_blind=True)
    batches = TensorBatches(model_inputs(data["train"]) | {"labels": data["train"]["labels"]}, batch_size=64, seed=seed)
    schedule = TrainConfig(
        steps=config.steps,
        lr=config.lr,
        weight_decay=0.0,
        seed=seed,
        eval_every=config.eval_every,
        log_every=config.eval_every,
        precision=CLASSIFIER_PRECISION,
    )
    train(model, batches, schedule, device=device, eval_fn=evaluate, tracker=tracker, progress=False)


def run(
    config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True, log_dir: str | Path | None = None
) -> Run:
    """Log one run per minority share under ``log_dir`` (default: :func:`halluc_lib.core.tracking.runs_root` /
    ``ch06_4``), read the event files back, and find when each domain reached the target accuracy.

    ``progress`` is accepted for the common interface; these models train in seconds, without a bar.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an experiment_tracking.Config; got {type(config).__name__}")
    root = Path(log_dir) if log_dir is not None else tracking.runs_root() / "ch06_4"
    curves, learned, log_dirs = [], [], {}
    for share in config.shares:
        folder = root / f"minority-{share:g}-seed{seed}"
        logged_run(share, config, folder, seed=seed, device=device)
        scalars = tracking.read_scalars(folder)
        curves.append(scalars.assign(share=share))
        for domain in DOMAINS:
            curve = scalars[scalars.tag == f"eval/{domain}/accuracy"]
            learned.append(
                {
                    "share": share,
                    "domain": domain,
                    "steps_to_target": first_step_reaching(curve, config.target),
                    "final_accuracy": float(curve.value.iloc[-1]),
                }
            )
        log_dirs[share] = folder
    columns = ["share", "tag", "step", "value"]
    return Run(curves=pd.concat(curves, ignore_index=True)[columns], learned=pd.DataFrame(learned), log_dirs=log_dirs)
