"""Digits with a nuisance feature, from scikit-learn's bundled 8×8 digits (no download).

* :func:`colored_digits`: the Colored-MNIST protocol of Arjovsky et al. (2019): label = digit < 5, flipped with
  probability 0.25; the colour agrees with the label with probability 0.9 and 0.8 in two training environments
  and 0.1 at test (chapters 2.3 and 4.1).
* :func:`domain_shifted_digits`: a rare domain (inverted ink) that makes up a chosen share of the training set
  (chapters 2.4 and 4.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits

from ..core.runtime import check_probability


@dataclass(frozen=True)
class Environment:
    """A dataset split in which the spurious feature agrees with the label with probability ``agreement``."""

    name: str
    agreement: float


COLORED_DIGITS_ENVIRONMENTS = (Environment("train 1", 0.9), Environment("train 2", 0.8), Environment("test", 0.1))


def colored_digits(
    environments=COLORED_DIGITS_ENVIRONMENTS, label_noise: float = 0.25, seed: int = 0
) -> dict[str, dict[str, torch.Tensor]]:
    """Colored digits: one dict of ``pixels`` (N, 2, 8, 8), ``labels`` and ``digits`` per environment.

    The digits are split evenly at random between the environments; each image's grey values go into the red
    or the green channel depending on its colour.
    """

    check_probability("label_noise", label_noise)
    if not environments:
        raise ValueError("environments must name at least one Environment")
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    rng = np.random.default_rng([seed, 23])
    order = rng.permutation(len(images))
    parts = np.array_split(order, len(environments))
    out = {}
    for env, idx in zip(environments, parts, strict=True):
        check_probability(f"agreement of {env.name!r}", env.agreement)
        digit = digits.target[idx]
        label = (digit < 5).astype(np.int64)
        label = np.where(rng.random(len(idx)) < label_noise, 1 - label, label)
        color = np.where(rng.random(len(idx)) < env.agreement, label, 1 - label)
        pixels = torch.zeros(len(idx), 2, 8, 8)
        pixels[np.arange(len(idx)), color] = images[idx]
        out[env.name] = {"pixels": pixels, "labels": torch.tensor(label), "digits": torch.tensor(digit)}
    return out


def domain_shifted_digits(minority_share: float, test_size: int = 500, seed: int = 0) -> dict[str, dict]:
    """Digits in two domains — ordinary (majority) and inverted ink (minority, ``1 - pixel``) — with the
    minority a ``minority_share`` of the training set, and a test set of every held-out digit in *both*
    domains. Label: digit < 5. Returns ``{"train": ..., "test majority": ..., "test minority": ...}``."""

    check_probability("minority_share", minority_share)
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    labels = torch.tensor((digits.target < 5).astype(np.int64))
    rng = np.random.default_rng([seed, 24])
    order = rng.permutation(len(images))
    test_idx, train_idx = order[:test_size], order[test_size:]
    minority = rng.random(len(train_idx)) < minority_share

    def render(idx, inverted):
        pixels = torch.zeros(len(idx), 2, 8, 8)
        body = images[idx]
        inverted = torch.as_tensor(inverted)
        pixels[:, 0] = torch.where(inverted[:, None, None], 1 - body, body)
        return {"pixels": pixels, "labels": labels[idx], "domains": inverted.long()}

    return {
        "train": render(train_idx, minority),
        "test majority": render(test_idx, np.zeros(len(test_idx), bool)),
        "test minority": render(test_idx, np.ones(len(test_idx), bool)),
        "minority_count": int(minority.sum()),
    }
