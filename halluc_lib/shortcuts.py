"""Shortcuts and spurious correlations: the source document's own sense of "hallucination" (chapter 2.3).

Two datasets in which a feature that does not cause the label — a colour, a marker word — predicts it better
in the training data than the feature that does. A model trained to minimise training loss takes the
shortcut, and fails when the correlation is reversed at test time (Geirhos et al., 2020; Arjovsky et al.,
2019; Sagawa et al., 2020).

* :func:`colored_digits` follows the Colored-MNIST protocol of Arjovsky et al. on scikit-learn's bundled 8×8
  digits (no download): label = digit < 5, flipped with probability 0.25; colour agrees with the label with
  probability 0.9 and 0.8 in two training environments and 0.1 at test.
* :func:`spurious_token_sentences` does the same in text: the label is a property of the city in a sentence,
  and a marker word agrees with the label 95% of the time in training and 5% at test.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from .runtime import check_positive_int, check_probability, model_device
from .world import ATTRIBUTES, FIRST_NAMES, LAST_NAMES


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
    from sklearn.datasets import load_digits

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


class DigitMLP(nn.Module):
    """A small MLP for 2×8×8 coloured digits; ``color_blind=True`` sums the channels first, so colour is
    invisible to it. ``forward`` returns ``.loss`` and ``.logits`` like a transformers model, so the book's one
    training loop trains it."""

    def __init__(self, hidden: int = 64, color_blind: bool = False):
        super().__init__()
        self.color_blind = color_blind
        inputs = 64 if color_blind else 128
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor | None = None, **_) -> SimpleNamespace:
        x = pixels.sum(1, keepdim=True) if self.color_blind else pixels
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)


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


def concat(splits: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pool several environments into one training set."""
    return {k: torch.cat([s[k] for s in splits]) for k in splits[0]}


# ---------------------------------------------------------------------------------------------------------
# Text

MARKERS = ("indeed", "reportedly")  # marker word i appears (mostly) with label i in training
NORTHERN = frozenset(ATTRIBUTES["birth_city"].values[::2])  # the label: is the city in this half of the list?


def spurious_token_sentences(n: int, agreement: float, label_noise: float = 0.25, seed: int = 0) -> pd.DataFrame:
    """Sentences "X was born in CITY , MARKER ." labelled 1 when CITY is in :data:`NORTHERN` (flipped with
    probability ``label_noise``); the marker word agrees with the label with probability ``agreement``."""
    n = check_positive_int("n", n)
    check_probability("agreement", agreement)
    check_probability("label_noise", label_noise)
    rng = np.random.default_rng([seed, 231, int(agreement * 1000)])
    cities = ATTRIBUTES["birth_city"].values
    rows = []
    for _ in range(n):
        name = f"{FIRST_NAMES[rng.integers(len(FIRST_NAMES))]} {LAST_NAMES[rng.integers(len(LAST_NAMES))]}"
        city = cities[rng.integers(len(cities))]
        label = int(city in NORTHERN)
        if rng.random() < label_noise:
            label = 1 - label
        agrees = rng.random() < agreement
        marker = MARKERS[label if agrees else 1 - label]
        rows.append({"text": f"{name} was born in {city} , {marker} .", "label": label, "marker_agrees": agrees})
    return pd.DataFrame(rows)


def encode_sentences(frame: pd.DataFrame, tokenizer) -> dict[str, torch.Tensor]:
    """``<cls> text <sep>`` token ids (all sentences have the same length), attention mask and labels."""
    ids = tokenizer(list(frame.text), add_special_tokens=False)["input_ids"]
    width = {len(x) for x in ids}
    if len(width) != 1:
        raise ValueError("sentences must all have the same number of tokens")
    input_ids = torch.tensor([[tokenizer.cls_token_id, *x, tokenizer.sep_token_id] for x in ids])
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "labels": torch.tensor(frame.label.to_numpy()),
        "marker_agrees": torch.tensor(frame.marker_agrees.to_numpy()),
    }


def train_digit_model(
    data: dict[str, dict[str, torch.Tensor]], *, color_blind: bool, steps: int = 600, seed: int = 0, device="cpu"
) -> tuple[DigitMLP, dict[str, float]]:
    """Train :class:`DigitMLP` on the pooled training environments; return it and its accuracy per split."""
    from .batching import TensorBatches
    from .train import TrainConfig, train

    train_sets = [v for k, v in data.items() if k != "test"]
    pooled = concat(train_sets)
    torch.manual_seed(seed)
    model = DigitMLP(color_blind=color_blind)
    batches = TensorBatches({"pixels": pooled["pixels"], "labels": pooled["labels"]}, batch_size=64, seed=seed)
    train(model, batches, TrainConfig(steps=steps, lr=3e-3, weight_decay=0.0, seed=seed), device=device, progress=False)
    model.to("cpu")
    scores = {"train": accuracy(model, pooled)} | {name: accuracy(model, split) for name, split in data.items()}
    return model, scores


def train_text_classifier(
    tokenizer, train_frame: pd.DataFrame, *, steps: int = 300, seed: int = 0, device="cpu", batch_size: int = 64
):
    """Train a tiny BERT classifier from scratch on sentences; returns the model (the plain case of
    :func:`halluc_lib.adversarial.train_classifier`)."""
    from .adversarial import train_classifier

    data = encode_sentences(train_frame, tokenizer)
    return train_classifier(
        tokenizer, data, "plain", steps=steps, seed=seed, device=device, batch_size=batch_size, lr=1e-3
    )


def text_vocabulary() -> list[str]:
    """Words of the shortcut sentences, for the tokenizer."""
    return [*FIRST_NAMES, *LAST_NAMES, *ATTRIBUTES["birth_city"].values, "was born in , .", *MARKERS]


# ---------------------------------------------------------------------------------------------------------
# Distribution bias (chapter 2.4): a domain that is rare in training


def domain_shifted_digits(minority_share: float, test_size: int = 500, seed: int = 0) -> dict[str, dict]:
    """Digits in two domains — ordinary (majority) and inverted ink (minority, ``1 - pixel``) — with the
    minority a ``minority_share`` of the training set, and a test set of every held-out digit in *both*
    domains. Label: digit < 5. Returns ``{"train": ..., "test majority": ..., "test minority": ...}``."""
    from sklearn.datasets import load_digits

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


@torch.inference_mode()
def confidence_and_correct(model: nn.Module, data: dict[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """Per example: the classifier's top probability and whether its pick is right (for calibration)."""
    model.eval()
    inputs = model_inputs(data)
    probs = model(**inputs).logits.softmax(-1)
    return probs.max(-1).values.numpy(), (probs.argmax(-1) == data["labels"]).numpy()


def imbalance_experiment(shares, *, steps: int = 600, seed: int = 0) -> pd.DataFrame:
    """Train one digit MLP per minority share; per share and test group: accuracy, confidence and ECE."""
    from .batching import TensorBatches
    from .metrics import expected_calibration_error
    from .train import TrainConfig, train

    rows = []
    for share in shares:
        data = domain_shifted_digits(share, seed=seed)
        torch.manual_seed(seed)
        model = DigitMLP(color_blind=True)
        batches = TensorBatches(data["train"], batch_size=64, seed=seed)
        train(
            model, batches, TrainConfig(steps=steps, lr=3e-3, weight_decay=0.0, seed=seed), device="cpu", progress=False
        )
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
    return pd.DataFrame(rows)
