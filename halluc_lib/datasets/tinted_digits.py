"""Tinted digits: scikit-learn's bundled 8×8 digits as small RGB images whose tint can agree with the class.

A vision stand-in for a biased pretraining corpus (chapter 5.4). Each digit is upsampled to ``size``×``size``,
shifted by up to two pixels, and drawn in one of two tints: reddish (tint 0) or greenish (tint 1). The tint is a
nuisance attribute: in a *biased* set it agrees with the digit's group (0–4 red, 5–9 green) with probability
``agreement``; at ``agreement=0.5`` it carries no information. No download: the digits ship with scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from ..core.runtime import check_positive_int, check_probability


@dataclass(frozen=True)
class Split:
    """Which of the 1,797 digits go to pretraining, to the small downstream training set, and to the test set."""

    pretrain: np.ndarray
    downstream: np.ndarray
    test: np.ndarray


def split_digits(downstream_size: int, test_size: int, seed: int = 0) -> Split:
    """A random split of the digits: ``downstream_size`` for fine-tuning, ``test_size`` for testing, the rest
    (about a thousand) for pretraining. No digit image is in two parts."""
    check_positive_int("downstream_size", downstream_size)
    check_positive_int("test_size", test_size)
    n = len(load_digits().target)
    if downstream_size + test_size >= n:
        raise ValueError(f"downstream_size + test_size must be below {n} (the number of digits)")
    order = np.random.default_rng([seed, 54]).permutation(n)
    downstream, test = order[:downstream_size], order[downstream_size : downstream_size + test_size]
    return Split(pretrain=order[downstream_size + test_size :], downstream=downstream, test=test)


def palette(strength: float) -> torch.Tensor:
    """The two tints as a (2, 3) tensor of RGB multipliers of the grey digit: reddish (1, 1−s, 1−s) and greenish
    (1−s, 1, 1−s) at strength ``s``; 0 is grey for both, 1 pure red and green."""
    check_probability("strength", strength)
    return torch.tensor([[1.0, 1 - strength, 1 - strength], [1 - strength, 1.0, 1 - strength]])


def tinted_digits(
    indices: np.ndarray,
    *,
    agreement: float,
    copies: int = 1,
    strength: float = 0.5,
    size: int = 16,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """``copies`` renderings of each digit in ``indices``: ``pixel_values`` (N, 3, size, size), ``digits``,
    ``groups`` (0 for digits 0–4, 1 for 5–9) and ``tints`` (0 red, 1 green; equal to the group with probability
    ``agreement``). Every copy has its own shift and tint draw."""
    check_probability("agreement", agreement)
    check_positive_int("copies", copies)
    check_positive_int("size", size)
    digits = load_digits()
    rng = np.random.default_rng([seed, 55])
    index = np.tile(np.asarray(indices), copies)
    grey = torch.tensor(digits.images[index], dtype=torch.float32)[:, None] / 16.0
    grey = F.interpolate(grey, size=size, mode="bilinear", align_corners=False)[:, 0]
    shifts = rng.integers(-2, 3, size=(len(index), 2))
    grey = torch.stack(
        [torch.roll(img, (int(dy), int(dx)), (0, 1)) for img, (dy, dx) in zip(grey, shifts, strict=True)]
    )
    digit = torch.tensor(digits.target[index])
    group = (digit >= 5).long()
    tint = torch.where(torch.from_numpy(rng.random(len(index)) < agreement), group, 1 - group)
    pixels = grey[:, None] * palette(strength)[tint][:, :, None, None]
    return {"pixel_values": pixels, "digits": digit, "groups": group, "tints": tint}


def swap_tints(pixel_values: torch.Tensor) -> torch.Tensor:
    """The same images in the other tint: the red and green channels exchanged (shape unchanged)."""
    return pixel_values[:, [1, 0, 2]]
