"""Chapter 2.4: distribution bias — a domain that is rare in training is answered worse and calibrated worse.

A digit classifier is trained on data where a second domain (inverted ink,
:func:`halluc_lib.datasets.digits.domain_shifted_digits`) makes up 1%, 5% or 30% of the examples, then
tested on every held-out digit in both domains.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core import recipes
from ..core.classify import confidence_and_correct
from ..core.metrics import expected_calibration_error
from ..core.models import DigitMLP
from ..core.runtime import Device, check_positive_int, check_scale, check_shares
from ..datasets.digits import domain_shifted_digits


@dataclass(frozen=True)
class Config:
    """The minority shares to train at, and how long each model trains."""

    shares: tuple[float, ...] = (0.01, 0.05, 0.3)
    steps: int = 600

    def __post_init__(self):
        check_shares("shares", self.shares)
        check_positive_int("steps", self.steps)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 600 steps per model; full: 3,000."""
        return cls() if check_scale(scale) == "quick" else cls(steps=3000)


@dataclass
class Run:
    """One row per (minority share, test group): accuracy, mean confidence and ECE."""

    results: pd.DataFrame


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train one colour-blind digit MLP per minority share and test it on every held-out digit in both domains.

    ``progress`` is accepted for the common interface; these models train in seconds, without a bar.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an imbalance.Config; got {type(config).__name__}")
    rows = []
    for share in config.shares:
        data = domain_shifted_digits(share, seed=seed)
        model = recipes.train_classifier(
            lambda: DigitMLP(color_blind=True),
            data["train"],
            config.steps,
            lr=3e-3,
            weight_decay=0.0,
            seed=seed,
            device=device,
        ).model
        for group in ("test majority", "test minority"):
            conf, correct = confidence_and_correct(model, data[group])
            rows.append(
                {
                    "minority_share": share,
                    "minority_examples": data["minority_count"],
                    "group": group.removeprefix("test "),
                    "accuracy": correct.mean(),
                    "confidence": conf.mean(),
                    "ECE": expected_calibration_error(conf, correct),
                }
            )
    return Run(pd.DataFrame(rows))
