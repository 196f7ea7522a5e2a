"""Data balancing: reweighting, resampling and group DRO (chapter 4.1; source §3.2 (1)).

All three change *how much each training example counts*, so a rare group or the examples that contradict a
shortcut are not drowned out:

* **reweighting** multiplies each example's loss by the inverse frequency of its group;
* **resampling** draws training batches with probabilities proportional to those weights (the rare group is
  seen more often, each time with weight one);
* **group DRO** (Sagawa et al., 2020) keeps a weight per group that grows exponentially with the group's loss
  and minimises the weighted sum — it optimises the worst group rather than the average.

Each is a wrapper or a batch source around an unchanged classifier, so the book's one training loop trains them.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from .batching import TensorBatches, _epoch_rng
from .runtime import check_positive_int
from .shortcuts import model_inputs

METHODS = ("plain", "reweighting", "resampling", "group DRO")


def inverse_frequency_weights(groups: torch.Tensor) -> torch.Tensor:
    """Per-example weights ∝ 1 / (size of its group), scaled to mean one, so every group weighs the same."""
    groups = torch.as_tensor(groups)
    if groups.numel() == 0:
        raise ValueError("groups must not be empty")
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse].float()
    return weights * len(weights) / weights.sum()


class WeightedLoss(nn.Module):
    """Wraps a classifier: the loss is the ``weights``-weighted mean of per-example cross-entropies."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, labels=None, weights=None, groups=None, **inputs):
        logits = self.model(**inputs).logits
        loss = None
        if labels is not None:
            per_example = nn.functional.cross_entropy(logits, labels, reduction="none")
            loss = per_example.mean() if weights is None else (weights * per_example).sum() / weights.sum()
        return SimpleNamespace(loss=loss, logits=logits)


class GroupDRO(nn.Module):
    """Wraps a classifier with the online group-DRO objective of Sagawa et al. (2020).

    Group weights ``q`` start uniform; at every training step ``q_g ← q_g · exp(step_size · loss_g)`` and are
    renormalised, and the loss is ``Σ_g q_g · loss_g``.
    """

    def __init__(self, model: nn.Module, n_groups: int, step_size: float = 0.01):
        super().__init__()
        self.model = model
        self.n_groups = check_positive_int("n_groups", n_groups)
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0; got {step_size!r}")
        self.step_size = step_size
        self.register_buffer("q", torch.full((n_groups,), 1.0 / n_groups))

    def forward(self, labels=None, groups=None, weights=None, **inputs):
        logits = self.model(**inputs).logits
        loss = None
        if labels is not None:
            if groups is None:
                raise ValueError("groups must be given with labels: group DRO needs each example's group")
            per_example = nn.functional.cross_entropy(logits, labels, reduction="none")
            sums = torch.zeros(self.n_groups, device=logits.device).index_add(0, groups, per_example)
            counts = torch.zeros(self.n_groups, device=logits.device).index_add(0, groups, torch.ones_like(per_example))
            group_loss = sums / counts.clamp(min=1)
            if self.training:
                with torch.no_grad():
                    present = counts > 0
                    self.q[present] *= torch.exp(self.step_size * group_loss[present])
                    self.q /= self.q.sum()
            loss = (self.q * group_loss).sum()
        return SimpleNamespace(loss=loss, logits=logits)


class ResampledBatches(TensorBatches):
    """Like :class:`~halluc_lib.batching.TensorBatches`, but every epoch draws its examples with replacement,
    with probability proportional to ``sampling_weights``."""

    def __init__(self, tensors, *, sampling_weights: torch.Tensor, batch_size: int, seed: int = 0):
        super().__init__(tensors, batch_size=batch_size, seed=seed)
        w = torch.as_tensor(sampling_weights, dtype=torch.float64)
        if w.shape != (self.n,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sampling_weights must hold one non-negative weight per example, not all zero")
        self.p = (w / w.sum()).numpy()

    def batch(self, epoch: int, index: int):
        draws = _epoch_rng(self.seed, epoch).choice(self.n, size=self.n, p=self.p)
        rows = torch.from_numpy(draws[index * self.batch_size : (index + 1) * self.batch_size])
        return {k: v[rows] for k, v in self.tensors.items()}


def train_balanced(
    build_model,
    train_data: dict[str, torch.Tensor],
    method: str,
    *,
    n_groups: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
    dro_step_size: float = 0.01,
):
    """Train ``build_model()`` on ``train_data`` (which must hold ``labels`` and ``groups``) with one method."""
    from .train import TrainConfig, train

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    torch.manual_seed(seed)
    inner = build_model()
    weights = inverse_frequency_weights(train_data["groups"])
    data = dict(train_data)
    if method == "reweighting":
        data["weights"] = weights
    if method == "group DRO":
        model = GroupDRO(inner, n_groups, dro_step_size)
    else:
        model = WeightedLoss(inner)
    if method == "resampling":
        batches = ResampledBatches(data, sampling_weights=weights, batch_size=batch_size, seed=seed)
    else:
        batches = TensorBatches(data, batch_size=batch_size, seed=seed)
    config = TrainConfig(steps=steps, lr=lr, weight_decay=0.0, seed=seed)
    train(model, batches, config, device="cpu", progress=False)
    return inner.eval()


@torch.inference_mode()
def group_accuracy(model: nn.Module, data: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Accuracy per group of one evaluation split, plus its size."""
    correct = (model(**model_inputs(data)).logits.argmax(-1) == data["labels"]).numpy()
    groups = data["groups"].numpy()
    return pd.DataFrame(
        [
            {"group": int(g), "n": int((groups == g).sum()), "accuracy": float(correct[groups == g].mean())}
            for g in np.unique(groups)
        ]
    )


def color_groups(split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Colored digits with ``groups`` = 2·label + colour: the two groups where colour contradicts the label
    are the rare ones in training."""
    color = split["pixels"].sum((2, 3)).argmax(1)
    return {"pixels": split["pixels"], "labels": split["labels"], "groups": 2 * split["labels"] + color}


def domain_groups(split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Domain-shifted digits with ``groups`` = 2·domain + label (domain 1 is the rare one)."""
    return {"pixels": split["pixels"], "labels": split["labels"], "groups": 2 * split["domains"] + split["labels"]}


def balancing_experiment(*, steps: int = 600, seed: int = 0, minority_share: float = 0.01) -> pd.DataFrame:
    """Every method on both chapter-2 datasets; one row per dataset, method and test group."""
    from .shortcuts import DigitMLP, colored_digits, concat, domain_shifted_digits

    colored = colored_digits(seed=seed)
    shifted = domain_shifted_digits(minority_share, seed=seed)
    datasets = {
        "colored digits (2.3)": (
            color_groups(concat([colored["train 1"], colored["train 2"]])),
            color_groups(colored["test"]),
        ),
        "rare domain (2.4)": (
            domain_groups(shifted["train"]),
            domain_groups(concat([shifted["test majority"], shifted["test minority"]])),
        ),
    }
    # A few untimed steps first, so one-time start-up costs do not land on whichever method is timed first.
    train_balanced(lambda: DigitMLP(), datasets["colored digits (2.3)"][0], "plain", n_groups=4, steps=5, seed=seed)
    rows = []
    for name, (train_data, test_data) in datasets.items():
        for method in METHODS:
            t0 = time.perf_counter()
            model = train_balanced(lambda: DigitMLP(), train_data, method, n_groups=4, steps=steps, seed=seed)
            seconds = time.perf_counter() - t0
            table = group_accuracy(model, test_data)
            overall = float((table.accuracy * table.n).sum() / table.n.sum())
            for r in table.itertuples():
                rows.append(
                    {
                        "dataset": name,
                        "method": method,
                        "group": r.group,
                        "n": r.n,
                        "accuracy": r.accuracy,
                        "average": overall,
                        "train_seconds": seconds,
                    }
                )
    return pd.DataFrame(rows)
