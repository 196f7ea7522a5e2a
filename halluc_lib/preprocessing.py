"""Preprocessing the pretraining data: deduplication, label-noise filtering, normalisation (chapter 4.5).

The source's fifth mitigation — "denoise and normalise the data" — is three different operations with three
different effects, each measured in chapter 4.5:

* **Deduplication** removes repeated text. Exact deduplication drops identical documents; near-duplicate
  detection (MinHash over word n-gram shingles with locality-sensitive hashing, Broder 1997, as in Lee et al.
  2022) also drops documents that share most of their text. Repetition is what makes a model memorise a
  sequence verbatim (chapter 2.5), so deduplication lowers extraction.
* **Label-noise filtering** drops training examples whose label the model, trained on *other* examples,
  finds implausible — a simplified confident-learning rule (Northcutt et al., 2021).
* **Normalisation** maps spellings of the same thing to one form (Unicode NFKC, case folding, accents), so
  that a fact written four ways counts as seen four times rather than as four facts seen once — which lowers
  the monofact rate, and with it the hallucination bound of chapter 3.4.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .runtime import check_positive_int, check_probability


def normalize_text(text: str) -> str:
    """NFKC-normalise, strip accents, case-fold and collapse whitespace: "Ｂába  BABAN" → "baba baban"."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def exact_dedup(documents: Sequence[str]) -> list[str]:
    """The documents with every later identical copy removed (order kept)."""
    seen: set[str] = set()
    kept = []
    for doc in documents:
        if doc not in seen:
            seen.add(doc)
            kept.append(doc)
    return kept


def shingles(text: str, n: int = 3) -> set[str]:
    """The set of word n-grams of ``text`` (the whole text if it is shorter than ``n`` words)."""
    n = check_positive_int("n", n)
    words = text.split()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets)."""
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def near_dedup(
    documents: Sequence[str], *, threshold: float = 0.5, n: int = 3, num_perm: int = 128, seed: int = 0
) -> list[str]:
    """The documents with every later near-duplicate removed: a document is dropped when its estimated
    Jaccard similarity of word ``n``-gram shingles to an already kept one is at least ``threshold``
    (MinHash LSH from ``datasketch``; candidates are confirmed with the exact Jaccard similarity)."""
    from datasketch import MinHash, MinHashLSH

    threshold = check_probability("threshold", threshold, open_low=True)
    num_perm = check_positive_int("num_perm", num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept, kept_shingles = [], []
    for doc in documents:
        sh = shingles(doc, n)
        m = MinHash(num_perm=num_perm, seed=seed)
        m.update_batch([s.encode() for s in sh])
        if any(jaccard(sh, kept_shingles[j]) >= threshold for j in lsh.query(m)):
            continue
        lsh.insert(len(kept), m)
        kept.append(doc)
        kept_shingles.append(sh)
    return kept


def out_of_fold_label_probability(train_fold, data: dict, *, folds: int = 2, seed: int = 0) -> np.ndarray:
    """For every example, the probability of its *given* label under a model trained on the other folds.

    ``train_fold(subset) -> model`` trains a classifier whose ``forward`` returns ``.logits``.
    """
    import torch

    from .shortcuts import model_inputs

    folds = check_positive_int("folds", folds)
    if folds < 2:
        raise ValueError(f"folds must be >= 2; got {folds}")
    n = len(data["labels"])
    fold_of = np.random.default_rng([seed, 47]).permutation(n) % folds
    prob = np.empty(n)
    for k in range(folds):
        held = torch.from_numpy(np.flatnonzero(fold_of == k))
        rest = torch.from_numpy(np.flatnonzero(fold_of != k))
        model = train_fold({key: v[rest] for key, v in data.items()})
        model.eval()
        with torch.no_grad():
            logits = model(**model_inputs({key: v[held] for key, v in data.items()})).logits
        p = logits.softmax(-1).gather(1, data["labels"][held][:, None])[:, 0]
        prob[held.numpy()] = p.numpy()
    return prob


def label_noise_experiment(
    *, n_train: int = 3000, label_noise: float = 0.3, steps: int = 400, threshold: float = 0.5, seed: int = 0
) -> tuple[pd.DataFrame, dict]:
    """Train the review classifier of chapter 4.2 on labels with ``label_noise`` flipped, with and without
    dropping the examples whose out-of-fold probability of their given label is below ``threshold``.

    Returns a table (``data``: noisy / filtered; ``examples``, ``label_noise`` left, clean ``test_accuracy``,
    test ``ECE``, ``train_seconds`` — for the filtered data including the out-of-fold models that chose it)
    and the filter's quality: precision and recall at finding the flipped labels, and the share
    of reviews won by a single word among all examples and among the *clean* examples it dropped.
    """
    import torch

    from . import adversarial, metrics, shortcuts
    from .tokenizer import build_tokenizer

    tok = build_tokenizer(adversarial.review_vocabulary())
    frame = adversarial.review_sentences(n_train, label_noise=label_noise, seed=seed)
    flipped = ((frame.balance > 0).astype(int) != frame.label).to_numpy()
    data = shortcuts.encode_sentences(frame, tok)
    test = shortcuts.encode_sentences(adversarial.review_sentences(1000, seed=seed + 1), tok)

    def fit(subset):
        return adversarial.train_classifier(tok, subset, "plain", steps=steps, seed=seed)

    t0 = time.perf_counter()
    prob = out_of_fold_label_probability(fit, data, seed=seed)
    filter_seconds = time.perf_counter() - t0
    keep = prob >= threshold
    rows = []
    for name, mask in (("noisy", np.ones_like(keep)), ("filtered", keep)):
        idx = torch.from_numpy(np.flatnonzero(mask))
        t0 = time.perf_counter()
        model = fit({k: v[idx] for k, v in data.items()})
        seconds = time.perf_counter() - t0
        with torch.no_grad():
            conf, correct = shortcuts.confidence_and_correct(model, test)
        rows.append(
            {
                "data": name,
                "examples": int(mask.sum()),
                "label_noise": float(flipped[mask].mean()),
                "test_accuracy": float(correct.mean()),
                "ECE": metrics.expected_calibration_error(conf, correct),
                "train_seconds": seconds + (filter_seconds if name == "filtered" else 0.0),
            }
        )
    dropped = ~keep
    close = (frame.balance.abs() == 1).to_numpy()
    clean_dropped = dropped & ~flipped
    quality = {
        "precision": float(flipped[dropped].mean()) if dropped.any() else float("nan"),
        "recall": float(dropped[flipped].mean()),
        "close_share_all": float(close.mean()),
        "close_share_clean_dropped": float(close[clean_dropped].mean()) if clean_dropped.any() else float("nan"),
    }
    return pd.DataFrame(rows), quality


def spelling_variants(name: str, rng: np.random.Generator) -> str:
    """One of the ways scraped text spells a name: as is, upper-cased, lower-cased, or with an accent."""
    kind = int(rng.integers(4))
    if kind == 1:
        return name.upper()
    if kind == 2:
        return name.lower()
    if kind == 3:
        vowels = {"a": "á", "e": "é", "i": "í", "o": "ó", "u": "ú"}
        return "".join(vowels.get(c, c) for c in name)
    return name


def mention_table(world, seed: int = 0) -> pd.DataFrame:
    """Every (person, attribute) statement of ``world``'s corpus, with the name spelled as a random variant."""
    rng = np.random.default_rng([seed, 48])
    rows = []
    for i, name in enumerate(world.names):
        for _ in range(world.exposures[i]):
            spelled = spelling_variants(name, rng)
            for j, attr in enumerate(world.attributes):
                rows.append({"person": i, "spelled": spelled, "attribute": attr, "value": world.values[i][j]})
    return pd.DataFrame(rows)
