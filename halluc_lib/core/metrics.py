"""Small pure functions that turn answers into numbers (chapters 2 and 3).

All take plain arrays or the tidy answer tables of :mod:`halluc_lib.core.probe` and return numbers or tidy tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate: honest near 0 and 1, where the normal interval is not."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"successes and n must satisfy 0 <= successes <= n; got {successes}, {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    if n == 0:
        return (0.0, 1.0)
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return (float(max(0.0, centre - half)), float(min(1.0, centre + half)))


def rate_table(answers: pd.DataFrame, by: str | list[str], column: str = "correct") -> pd.DataFrame:
    """Per group: ``n``, the rate of a boolean ``column`` and its 95% Wilson interval (``low``, ``high``)."""
    if column not in answers:
        raise ValueError(f"column must be a column of answers; {column!r} is not in {list(answers.columns)}")
    rows = []
    for key, group in answers.groupby(by, observed=True, sort=True):
        k, n = int(group[column].sum()), len(group)
        low, high = wilson_interval(k, n)
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip([by] if isinstance(by, str) else by, key, strict=True)),
                "n": n,
                "rate": k / n,
                "low": low,
                "high": high,
            }
        )
    return pd.DataFrame(rows)


def accuracy_by_exposure(answers: pd.DataFrame, by: str = "exposures") -> pd.DataFrame:
    """Accuracy per exposure count (or bucket column ``by``), with 95% intervals and mean confidence."""
    table = rate_table(answers, by).rename(columns={"rate": "accuracy"})
    conf = answers.groupby(by, observed=True, sort=True)["confidence"].mean().reset_index(drop=True)
    table["confidence"] = conf.to_numpy()
    return table


def outcome_rates(answers: pd.DataFrame) -> dict[str, float]:
    """Accuracy, hallucination and abstention rates; they sum to one.

    An answer is *correct*, an *abstention* (``abstained`` column, if present), or else a *hallucination*:
    a specific, wrong value stated as an answer.
    """
    n = len(answers)
    if n == 0:
        raise ValueError("answers must not be empty")
    abstained = answers["abstained"].to_numpy(bool) if "abstained" in answers else np.zeros(n, bool)
    correct = answers["correct"].to_numpy(bool) & ~abstained
    return {
        "accuracy": float(correct.mean()),
        "hallucination": float((~correct & ~abstained).mean()),
        "abstention": float(abstained.mean()),
    }


def reliability_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> pd.DataFrame:
    """Equal-width confidence bins: count, mean confidence and accuracy per bin (reliability-diagram data)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.shape != correct.shape or confidence.ndim != 1:
        raise ValueError("confidence and correct must be 1-D arrays of the same length")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    if ((confidence < 0) | (confidence > 1)).any():
        raise ValueError("confidence must lie in [0, 1]")
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    rows = []
    for b in range(n_bins):
        mask = bins == b
        rows.append(
            {
                "bin": b,
                "low": edges[b],
                "high": edges[b + 1],
                "count": int(mask.sum()),
                "confidence": float(confidence[mask].mean()) if mask.any() else np.nan,
                "accuracy": float(correct[mask].mean()) if mask.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean gap between confidence and accuracy over 15 equal-width bins."""
    table = reliability_table(confidence, correct, n_bins).dropna()
    if table["count"].sum() == 0:
        raise ValueError("confidence must not be empty")
    gaps = (table["confidence"] - table["accuracy"]).abs()
    return float((gaps * table["count"]).sum() / table["count"].sum())


def monofact_rate(observations: Iterable[Hashable]) -> float:
    """Good–Turing estimate of the missing mass: the fraction of observations whose item occurs exactly once.

    Kalai & Vempala (2023) show a calibrated model must hallucinate on about this fraction of facts.
    """
    counts = np.fromiter(Counter(observations).values(), dtype=np.int64)
    if counts.size == 0:
        raise ValueError("observations must not be empty")
    return good_turing_estimate(counts)


def good_turing_estimate(counts: np.ndarray) -> float:
    """N1 / n: the fraction of the sample made of items that occur exactly once (the monofact rate)."""
    counts = np.asarray(counts)
    n = counts.sum()
    if n <= 0:
        raise ValueError("counts must describe a non-empty sample")
    return float((counts == 1).sum() / n)


def ece_by_group(answers: pd.DataFrame, groups: dict[str, Sequence[int]], n_bins: int = 15) -> pd.DataFrame:
    """ECE, accuracy and mean confidence of ``answers`` overall (row ``"all"``) and per group of exposure
    counts (``groups``: name → the ``exposures`` values it holds), indexed by group (chapter 3.3)."""
    parts = {"all": answers} | {name: answers[answers.exposures.isin(ks)] for name, ks in groups.items()}
    rows = []
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"groups: group {name!r} holds no answers")
        ece = expected_calibration_error(part.confidence.to_numpy(), part.correct.to_numpy(), n_bins)
        rows.append({"group": name, "ECE": ece, "accuracy": part.correct.mean(), "confidence": part.confidence.mean()})
    return pd.DataFrame(rows).set_index("group")
