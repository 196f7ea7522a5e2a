"""Labelled sentences for the classifier pages, with a marker word that can act as a shortcut.

* :func:`spurious_token_sentences` (chapter 2.3): "X was born in CITY , MARKER .", labelled by a property of the
  city; the marker word agrees with the label with a chosen probability.
* :func:`review_sentences` (chapters 4.2 and 4.5): reviews whose label is the balance of positive and negative
  words, optionally with the same marker words.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core.runtime import check_positive_int, check_probability
from ..core.world import ATTRIBUTES, FIRST_NAMES, LAST_NAMES

MARKERS = ("indeed", "reportedly")  # marker word i appears (mostly) with label i in training


#: The label of a born-in sentence: is its city in this half of the list?
NORTHERN = frozenset(ATTRIBUTES["birth_city"].values[::2])


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


def encode_sentences(frame: pd.DataFrame, tokenizer: PreTrainedTokenizerBase) -> dict[str, torch.Tensor]:
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


def text_vocabulary() -> list[str]:
    """Words of the shortcut sentences, for the tokenizer."""
    return [*FIRST_NAMES, *LAST_NAMES, *ATTRIBUTES["birth_city"].values, "was born in , .", *MARKERS]


POSITIVE_WORDS = tuple("good great fine superb lovely bright warm solid clever pleasant".split())


NEGATIVE_WORDS = tuple("bad awful poor dull grim weak cold broken clumsy bitter".split())


NEUTRAL_WORDS = tuple("long short blue green old new tall small round plain".split())


def review_sentences(
    n: int, *, n_words: int = 6, marker_agreement: float | None = None, label_noise: float = 0.0, seed: int = 0
) -> pd.DataFrame:
    """Sentences "the review was W1 … Wk ." labelled 1 when positive words outnumber negative ones.

    Each word is positive, negative or neutral with equal probability; draws with a tie are redrawn, so the
    evidence is graded — a review may win by one word or by six — and a perturbation must change the meaning
    of several words to flip a clear one. ``label_noise`` flips that share of labels. With
    ``marker_agreement``, a marker word (chapter 2.3's ``"indeed"`` / ``"reportedly"``) is appended that agrees
    with the (possibly flipped) label with that probability: a shortcut, as in chapter 2.3.
    """
    n = check_positive_int("n", n)
    n_words = check_positive_int("n_words", n_words)
    check_probability("label_noise", label_noise)
    if marker_agreement is not None:
        check_probability("marker_agreement", marker_agreement)
    rng = np.random.default_rng([seed, 42])
    lists = (POSITIVE_WORDS, NEGATIVE_WORDS, NEUTRAL_WORDS)
    rows = []
    while len(rows) < n:
        kinds = rng.integers(3, size=n_words)
        balance = int((kinds == 0).sum() - (kinds == 1).sum())
        if balance == 0:
            continue
        words = " ".join(lists[k][rng.integers(len(lists[k]))] for k in kinds)
        label = int(balance > 0)
        if rng.random() < label_noise:
            label = 1 - label
        row = {"text": f"the review was {words} .", "label": label, "balance": balance, "marker_agrees": True}
        if marker_agreement is not None:
            agrees = bool(rng.random() < marker_agreement)
            row["text"] = f"the review was {words} , {MARKERS[label if agrees else 1 - label]} ."
            row["marker_agrees"] = agrees
        rows.append(row)
    return pd.DataFrame(rows)


def review_vocabulary() -> list[str]:
    """Every word of :func:`review_sentences`, for the tokenizer."""
    return ["the review was , .", *POSITIVE_WORDS, *NEGATIVE_WORDS, *NEUTRAL_WORDS, *MARKERS]
