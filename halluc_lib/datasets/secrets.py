"""Duplicated text and verbatim memorisation (chapter 2.5; reused by deduplication in chapter 4.5).

A *secret* is a random code attached to a made-up person — "the access code of Baba Baban is c3 c17 c0 …" —
inserted into the corpus ``copies`` times. Because the code is random, no pattern predicts it: a model can
only reproduce it by memorising that string. The *extraction rate* is the fraction of secrets whose greedy
continuation of the prefix reproduces the whole code (the definition of Carlini et al., 2023).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import recipes
from ..core.probe import extend_tokens
from ..core.recipes import Budget, ModelSize
from ..core.runtime import Device, check_positive_int, check_scale, resolve_device
from ..core.tokenizer import build_tokenizer
from ..core.train import TrainResult
from ..core.world import FIRST_NAMES, LAST_NAMES, bucket_world, build_corpus, render_biography

CODE_SYMBOLS = tuple(f"c{i}" for i in range(20))
SECRET_PREFIX = "the access code of {name} is"


@dataclass(frozen=True)
class Secret:
    """A random code, the prompt that precedes it, and how many times it was put in the corpus."""

    name: str
    code: tuple[str, ...]
    copies: int

    @property
    def prompt(self) -> str:
        return SECRET_PREFIX.format(name=self.name)

    @property
    def text(self) -> str:
        return f"{self.prompt} {' '.join(self.code)} ."


def make_secrets(copies: Sequence[int], per_copy: int, length: int = 6, seed: int = 0) -> list[Secret]:
    """``per_copy`` secrets for each duplication count in ``copies``, with unique names and random codes."""
    per_copy = check_positive_int("per_copy", per_copy)
    length = check_positive_int("length", length)
    if len(copies) == 0:
        raise ValueError("copies must name at least one duplication count, e.g. (1, 2, 4)")
    for c in copies:
        check_positive_int("copies[i]", c)
    rng = np.random.default_rng([seed, 25])
    n = per_copy * len(copies)
    flat = rng.choice(len(FIRST_NAMES) * len(LAST_NAMES), size=n, replace=False)
    names = [f"{FIRST_NAMES[i // len(LAST_NAMES)]} {LAST_NAMES[i % len(LAST_NAMES)]}" for i in flat]
    codes = rng.integers(len(CODE_SYMBOLS), size=(n, length))
    counts = np.repeat(np.asarray(copies), per_copy)
    return [
        Secret(name, tuple(CODE_SYMBOLS[j] for j in code), int(c))
        for name, code, c in zip(names, codes, counts, strict=True)
    ]


def secret_documents(secrets: Sequence[Secret]) -> list[str]:
    """Each secret's sentence repeated ``copies`` times (exact duplicates, as scraped text repeats)."""
    return [s.text for s in secrets for _ in range(s.copies)]


def near_duplicate_documents(secrets: Sequence[Secret], world, seed: int = 0) -> list[str]:
    """Each copy of each secret followed by a different random sentence from ``world``'s biographies: the
    same text with different surroundings, as a quote or a boilerplate block recurs across scraped pages.
    Exact deduplication leaves these; near-duplicate detection (chapter 4.5) finds them."""

    rng = np.random.default_rng([seed, 45])
    docs = []
    for s in secrets:
        for _ in range(s.copies):
            sentences = render_biography(world, int(rng.integers(world.n_people)), rng).split(" . ")
            docs.append(f"{s.text} {sentences[0].removesuffix(' .')} .")
    return docs


def secret_vocabulary() -> list[str]:
    """The words secrets use, for building a tokenizer that covers them."""
    return [SECRET_PREFIX.replace("{name}", " "), ".", *CODE_SYMBOLS]


@torch.inference_mode()
def greedy_continuations(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    n_tokens: int,
    device: Device = "auto",
) -> list[list[str]]:
    """Greedy decoding of ``n_tokens`` tokens after each prompt (prompts are batched by length; no sampling)."""
    n_tokens = check_positive_int("n_tokens", n_tokens)
    if len(prompts) == 0:
        raise ValueError("prompts must not be empty")
    device = resolve_device(device)
    model.eval()
    model.to(device)
    encoded = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    out: list[list[str] | None] = [None] * len(prompts)
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_len.setdefault(len(ids), []).append(i)
    for idx in by_len.values():
        ids = torch.tensor([[tokenizer.eos_token_id, *encoded[i]] for i in idx], device=device)
        ids = extend_tokens(model, ids, n_tokens)
        for row, i in enumerate(idx):
            out[i] = tokenizer.convert_ids_to_tokens(ids[row, -n_tokens:].tolist())
    return out  # type: ignore[return-value]


def extraction_table(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, secrets: Sequence[Secret], device: Device = "auto"
) -> pd.DataFrame:
    """One row per secret: its copies, whether greedy decoding reproduced the whole code, and how many tokens."""
    length = len(secrets[0].code)
    continuations = greedy_continuations(model, tokenizer, [s.prompt for s in secrets], length, device=device)
    rows = []
    for s, cont in zip(secrets, continuations, strict=True):
        matched = int(np.cumprod([a == b for a, b in zip(cont, s.code, strict=True)]).sum())
        rows.append(
            {
                "name": s.name,
                "copies": s.copies,
                "extracted": cont == list(s.code),
                "prefix_matched": matched,
                "well_formed": all(t in CODE_SYMBOLS for t in cont),
                "continuation": " ".join(cont),
            }
        )
    return pd.DataFrame(rows)


def extraction_rate(table: pd.DataFrame) -> pd.DataFrame:
    """Extraction rate per duplication count (with the mean number of code tokens reproduced in order)."""
    return table.groupby("copies", as_index=False).agg(
        extraction_rate=("extracted", "mean"),
        tokens_matched=("prefix_matched", "mean"),
        well_formed=("well_formed", "mean"),
        n=("extracted", "size"),
    )


@dataclass(frozen=True)
class SecretsConfig:
    """Sizes of the duplication experiment: secrets at several copy counts mixed into biographies."""

    copies: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    per_copy: int = 30
    code_length: int = 6
    filler_buckets: tuple[int, ...] = (1, 4)
    filler_per_bucket: int = 40
    size: ModelSize = ModelSize()
    batch_size: int = 32
    steps: int = 280  # about four passes: rarely copied secrets are not yet memorised, often copied ones are
    lr: float = 3e-3
    near_duplicates: bool = False  # copies differ in a trailing sentence (see near_duplicate_documents)
    epochs: float | None = None  # if set, train this many passes over the (filtered) corpus instead of `steps`

    @classmethod
    def for_scale(cls, scale: str = "quick") -> SecretsConfig:
        """Quick: 30 secrets per copy count, the quick model; full: 150 per copy count, the full model."""
        check_scale(scale)
        if scale == "quick":
            return cls()
        return cls(per_copy=150, filler_per_bucket=200, size=ModelSize.for_scale("full"), batch_size=64, steps=700)


@dataclass
class SecretsModel:
    """The corpus with its secrets, the model trained on it, and one extraction row per secret."""

    config: SecretsConfig
    secrets: list[Secret]
    corpus: list[str]
    tokenizer: object
    model: torch.nn.Module
    result: TrainResult
    table: pd.DataFrame
    filter_seconds: float = 0.0  # time spent in the corpus filter, if any


def secrets_model(
    config: SecretsConfig, *, seed: int = 0, device: Device = "auto", corpus_filter=None, progress: bool = True
) -> SecretsModel:
    """Train a tiny GPT on biographies plus duplicated secrets, then try to extract every secret.

    ``corpus_filter`` (a function from documents to documents, e.g. a deduplicator) is applied to the corpus
    before training, so chapter 4.5 can compare the same data with and without preprocessing.
    """

    if not isinstance(config, SecretsConfig):
        raise TypeError(f"config must be a SecretsConfig; got {type(config).__name__}")
    world = bucket_world(config.filler_buckets, config.filler_per_bucket, seed=seed)
    secrets = make_secrets(config.copies, config.per_copy, config.code_length, seed=seed)
    copies = near_duplicate_documents(secrets, world, seed) if config.near_duplicates else secret_documents(secrets)
    corpus = build_corpus(world, seed=seed) + copies
    filter_seconds = 0.0
    if corpus_filter is not None:
        start = time.perf_counter()
        corpus = list(corpus_filter(corpus))
        filter_seconds = time.perf_counter() - start
    tok = build_tokenizer(world.vocabulary() + secret_vocabulary())
    budget = Budget(steps=config.steps) if config.epochs is None else Budget(epochs=config.epochs)
    trained = recipes.train_lm(
        corpus,
        tok,
        config.size,
        budget,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        device=device,
        progress=progress,
    )
    table = extraction_table(trained.model, tok, secrets, device=device)
    return SecretsModel(config, secrets, corpus, tok, trained.model, trained.result, table, filter_seconds)
