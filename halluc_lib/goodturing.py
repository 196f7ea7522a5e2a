"""Good–Turing: estimating how much probability sits on things never seen (chapter 3.4).

If a sample of size n from a distribution p leaves some items unseen, their total probability — the
*missing mass* M0 — cannot be read off the sample directly. Good and Turing's estimate is the fraction of the
sample made of items seen exactly once, N1/n. Kalai & Vempala (2024) tie it to hallucination: facts seen once
in training stand in for facts never seen, and a calibrated model must hallucinate on about that fraction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .runtime import check_positive_int


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


def good_turing_estimate(counts: np.ndarray) -> float:
    """N1 / n: the fraction of the sample made of items that occur exactly once (the monofact rate)."""
    counts = np.asarray(counts)
    n = counts.sum()
    if n <= 0:
        raise ValueError("counts must describe a non-empty sample")
    return float((counts == 1).sum() / n)


def expected_bias(p: np.ndarray, n: int) -> float:
    """E[N1/n] − E[M0] = Σ p_i² (1 − p_i)^(n−1), exactly; it lies in [0, 1/n] (the theorem of chapter 3.4)."""
    p = _check_distribution(p)
    n = check_positive_int("n", n)
    return float((p**2 * (1 - p) ** (n - 1)).sum())


def simulate(p: np.ndarray, sizes: Sequence[int], trials: int = 200, seed: int = 0) -> pd.DataFrame:
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
