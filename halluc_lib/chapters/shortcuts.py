"""Shortcuts and spurious correlations: the source document's own sense of "hallucination" (chapter 2.3).

Two datasets in which a feature that does not cause the label — a colour, a marker word — predicts it better
in the training data than the feature that does. A model trained to minimise training loss takes the
shortcut, and fails when the correlation is reversed at test time (Geirhos et al., 2020; Arjovsky et al.,
2019; Sagawa et al., 2020).

* Coloured digits (:func:`halluc_lib.datasets.digits.colored_digits`), the Colored-MNIST protocol of Arjovsky
  et al.: colour agrees with the label with probability 0.9 and 0.8 in two training environments and 0.1 at
  test. A digit MLP trained on them, and one that cannot see colour.
* Sentences with a marker word (:func:`halluc_lib.datasets.sentences.spurious_token_sentences`): the label is
  a property of the city, and the marker word agrees with it 95% of the time in training and 5% at test.

The null of each claim is the model or rule without the shortcut: the colour-blind digit model, and for the text,
the rule that reads only the city (:func:`city_rule_accuracy`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import recipes
from ..core.classify import accuracy, concat
from ..core.models import DigitMLP
from ..core.runtime import Device, check_positive_int, check_probability, check_scale
from ..core.tokenizer import build_tokenizer
from ..datasets.digits import colored_digits
from ..datasets.sentences import NORTHERN, encode_sentences, spurious_token_sentences, text_vocabulary


@dataclass(frozen=True)
class Config:
    """Training lengths and sizes of the two shortcut experiments."""

    digit_steps: int = 600
    text_steps: int = 300
    n_text_train: int = 4000
    n_text_test: int = 2000
    train_agreement: float = 0.95  # how often the marker word agrees with the label in training
    test_agreement: float = 0.05  # ... and at test

    def __post_init__(self):
        for name in ("digit_steps", "text_steps", "n_text_train", "n_text_test"):
            check_positive_int(name, getattr(self, name))
        for name in ("train_agreement", "test_agreement"):
            check_probability(name, getattr(self, name))

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 600 digit steps and 4,000 training sentences; full: five times as much of both."""
        if check_scale(scale) == "quick":
            return cls()
        return cls(digit_steps=3000, text_steps=1500, n_text_train=20000)


def train_digit_model(
    data: dict[str, dict[str, torch.Tensor]],
    *,
    color_blind: bool,
    steps: int = 600,
    seed: int = 0,
    device: Device = "auto",
) -> tuple[DigitMLP, dict[str, float]]:
    """Train :class:`~halluc_lib.core.models.DigitMLP` on the pooled training environments (every split but
    ``"test"``); return it and its accuracy on the pooled training data and on each split."""
    pooled = concat([v for k, v in data.items() if k != "test"])
    trained = recipes.train_classifier(
        lambda: DigitMLP(color_blind=color_blind), pooled, steps, lr=3e-3, weight_decay=0.0, seed=seed, device=device
    )
    model = trained.model
    scores = {"train": accuracy(model, pooled)} | {name: accuracy(model, split) for name, split in data.items()}
    return model, scores


def train_text_classifier(
    tokenizer: PreTrainedTokenizerBase,
    train_frame: pd.DataFrame,
    *,
    steps: int = 300,
    seed: int = 0,
    device: Device = "auto",
    batch_size: int = 64,
):
    """Train the tiny BERT classifier (:data:`halluc_lib.core.recipes.TEXT_CLASSIFIER`) from scratch on
    sentences; returns the model."""
    data = encode_sentences(train_frame, tokenizer)
    return recipes.train_text_classifier(
        tokenizer, data, steps, seed=seed, device=device, batch_size=batch_size, lr=1e-3
    ).model


def city_rule_accuracy(frame: pd.DataFrame) -> float:
    """Accuracy of the rule that reads only the real feature — label 1 when the sentence's city is in
    :data:`~halluc_lib.datasets.sentences.NORTHERN` — on sentences "X Y was born in CITY , MARKER .": the best a
    classifier that ignores the marker can expect, in training and at test alike (1 minus the label noise)."""
    cities = frame.text.str.split().str[5]
    return float((cities.isin(NORTHERN).astype(int) == frame.label).mean())


@dataclass
class Run:
    """The coloured digits with the plain and the colour-blind model, and the marker-word classifier."""

    digits: dict[str, dict[str, torch.Tensor]]
    plain: DigitMLP
    plain_accuracy: dict[str, float]  # per split, and "train" for the pooled training data
    blind: DigitMLP
    blind_accuracy: dict[str, float]
    tokenizer: object
    text_model: torch.nn.Module
    train_frame: pd.DataFrame  # the marker agrees with the label `train_agreement` of the time
    test_frame: pd.DataFrame  # ... and `test_agreement` of the time
    text_train_accuracy: float
    text_test_accuracy: float


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Both experiments: digit models with and without sight of colour, and the marker-word classifier.

    ``progress`` is accepted for the common interface; these models train in seconds, without a bar.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a shortcuts.Config; got {type(config).__name__}")
    digits = colored_digits(seed=seed)
    plain, plain_accuracy = train_digit_model(
        digits, color_blind=False, steps=config.digit_steps, seed=seed, device=device
    )
    blind, blind_accuracy = train_digit_model(
        digits, color_blind=True, steps=config.digit_steps, seed=seed, device=device
    )
    train_frame = spurious_token_sentences(config.n_text_train, agreement=config.train_agreement, seed=seed)
    test_frame = spurious_token_sentences(config.n_text_test, agreement=config.test_agreement, seed=seed + 1)
    tok = build_tokenizer(text_vocabulary())
    text_model = train_text_classifier(tok, train_frame, steps=config.text_steps, seed=seed, device=device)
    return Run(
        digits,
        plain,
        plain_accuracy,
        blind,
        blind_accuracy,
        tok,
        text_model,
        train_frame,
        test_frame,
        accuracy(text_model, encode_sentences(train_frame, tok)),
        accuracy(text_model, encode_sentences(test_frame, tok)),
    )
