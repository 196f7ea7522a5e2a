"""Good–Turing: estimating how much probability sits on things never seen (chapter 3.4).

If a sample of size n from a distribution p leaves some items unseen, their total probability — the
*missing mass* M0 — cannot be read off the sample directly. Good and Turing's estimate is the fraction of the
sample made of items seen exactly once, N1/n. Kalai & Vempala (2024) tie it to hallucination: facts seen once
in training stand in for facts never seen, and a calibrated model must hallucinate on about that fraction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.metrics import good_turing_estimate
from ..core.runtime import Device, check_positive_int, check_scale


def zipf_distribution(n_items: int, exponent: float = 1.1) -> np.ndarray:
    """Probabilities p_i ∝ i^-exponent over ``n_items`` items: a long tail like word or entity frequencies."""
    n_items = check_positive_int("n_items", n_items)
    if not exponent > 0:
        raise ValueError(f"exponent must be > 0; got {exponent!r}")
    w = np.arange(1, n_items + 1, dtype=float) ** (-float(exponent))
    return w / w.sum()


def _check_distribution(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or p.size == 0 or (p < 0).any() or not np.isclose(p.sum(), 1.0):
        raise ValueError("p must be a non-empty 1-D array of non-negative probabilities summing to 1")
    return p


def missing_mass(counts: np.ndarray, p: np.ndarray) -> float:
    """The true missing mass: total probability of the items whose count in the sample is zero."""
    p = _check_distribution(p)
    counts = np.asarray(counts)
    if counts.shape != p.shape:
        raise ValueError(f"counts must have one entry per item ({p.size}); got shape {counts.shape}")
    return float(p[counts == 0].sum())


def expected_bias(p: np.ndarray, n: int) -> float:
    """E[N1/n] − E[M0] = Σ p_i² (1 − p_i)^(n−1), exactly; it lies in [0, 1/n] (the theorem of chapter 3.4)."""
    p = _check_distribution(p)
    n = check_positive_int("n", n)
    return float((p**2 * (1 - p) ** (n - 1)).sum())


def simulate_missing_mass(p: np.ndarray, sizes: Sequence[int], trials: int = 200, seed: int = 0) -> pd.DataFrame:
    """Draw ``trials`` samples of each size; one row per sample with the true and estimated missing mass."""
    p = _check_distribution(p)
    trials = check_positive_int("trials", trials)
    if len(sizes) == 0:
        raise ValueError("sizes must name at least one sample size")
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        n = check_positive_int("sizes[i]", n)
        for t in range(trials):
            counts = rng.multinomial(n, p)
            true, est = missing_mass(counts, p), good_turing_estimate(counts)
            rows.append({"n": n, "trial": t, "missing_mass": true, "good_turing": est, "abs_error": abs(est - true)})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Config:
    """The Zipf distribution sampled from, the sample sizes, and how many samples of each size."""

    n_items: int = 20_000
    exponent: float = 1.1
    sizes: tuple[int, ...] = (100, 300, 1_000, 3_000, 10_000, 30_000)
    trials: int = 200

    def __post_init__(self):
        check_positive_int("n_items", self.n_items)
        check_positive_int("trials", self.trials)
        if not self.exponent > 0:
            raise ValueError(f"exponent must be > 0; got {self.exponent!r}")
        if not self.sizes:
            raise ValueError("sizes must name at least one sample size")
        for n in self.sizes:
            check_positive_int("sizes", n)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 20,000 items, 200 samples per size; full: 200,000 items, 1,000 samples per size."""
        return cls() if check_scale(scale) == "quick" else cls(n_items=200_000, trials=1000)


@dataclass
class Run:
    """Every sample (``simulation``) and, per sample size, the means beside the theorem's bias bound and the
    error of the naive estimate that nothing is missing (``naive_mean_abs_error``, the page's null)."""

    distribution: np.ndarray
    simulation: pd.DataFrame
    summary: pd.DataFrame


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Sample from the Zipf distribution at every size and compare Good–Turing's estimate with the truth.

    Pure NumPy: ``device`` and ``progress`` are accepted for the common interface and not used.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a good_turing.Config; got {type(config).__name__}")
    p = zipf_distribution(config.n_items, exponent=config.exponent)
    simulation = simulate_missing_mass(p, config.sizes, trials=config.trials, seed=seed)
    summary = (
        simulation.groupby("n")
        .agg(
            missing_mass=("missing_mass", "mean"),
            good_turing=("good_turing", "mean"),
            mean_abs_error=("abs_error", "mean"),
            # the null: the naive estimate "nothing is missing" (0) is off by the missing mass itself
            naive_mean_abs_error=("missing_mass", "mean"),
        )
        .reset_index()
    )
    summary["bias_bound_1_over_n"] = 1 / summary.n
    summary["exact_expected_bias"] = [expected_bias(p, n) for n in summary.n]
    return Run(p, simulation, summary)
