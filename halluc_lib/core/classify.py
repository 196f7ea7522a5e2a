"""Classifiers trained by the book's one loop: what goes into them, how they are scored (chapters 2.3–4.5).

A classification dataset is a dict of equally long tensors: the model's inputs plus ``labels`` and bookkeeping
columns (:data:`NON_INPUT_KEYS`) that evaluation and balancing read but the model never sees.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .runtime import model_device

#: Tensors a dataset carries beside the model's inputs: targets and bookkeeping for evaluation and balancing.
NON_INPUT_KEYS = frozenset({"labels", "digits", "marker_agrees", "groups", "weights", "domains"})


def model_inputs(data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ``data`` that a classifier's ``forward`` takes as inputs."""
    return {k: v for k, v in data.items() if k not in NON_INPUT_KEYS}


@torch.inference_mode()
def accuracy(model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 1024) -> float:
    """Accuracy of a classifier whose forward returns ``.logits``, on one split."""
    model.eval()
    device = model_device(model)
    inputs = model_inputs(data)
    n = len(data["labels"])
    correct = 0
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size].to(device) for k, v in inputs.items()}
        pred = model(**batch).logits.argmax(-1).cpu()
        correct += int((pred == data["labels"][start : start + batch_size]).sum())
    return correct / n


@torch.inference_mode()
def confidence_and_correct(model: nn.Module, data: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Per example: the classifier's top probability and whether its pick is right (for calibration)."""
    model.eval()
    inputs = model_inputs(data)
    probs = model(**inputs).logits.softmax(-1)
    return probs.max(-1).values.numpy(), (probs.argmax(-1) == data["labels"]).numpy()


def concat(splits: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pool several environments into one training set."""
    return {k: torch.cat([s[k] for s in splits]) for k in splits[0]}
