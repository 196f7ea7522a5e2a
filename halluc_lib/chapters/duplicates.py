"""Chapter 2.5: duplicated text is memorised verbatim, and how many copies it takes.

Secrets — random codes attached to made-up people — are inserted into a biography corpus 1, 2, 4, … 32 times
(:mod:`halluc_lib.datasets.secrets`, which chapter 4.5 reuses to measure deduplication). A tiny GPT is trained
on the corpus and asked to continue each secret's prefix; the extraction rate rises with the number of copies
(Carlini et al., 2023; Kandpal, Wallace & Raffel, 2022). The page's exercise — the same model on the corpus
with its exact duplicates removed — trains side by side with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import pandas as pd

from ..core import parallel
from ..core.runtime import Device
from ..datasets.secrets import SecretsConfig, SecretsModel, extraction_rate, secrets_model


@dataclass(frozen=True)
class Config:
    """The secrets and the model of the page (:class:`~halluc_lib.datasets.secrets.SecretsConfig`)."""

    secrets: SecretsConfig = SecretsConfig()

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The secrets experiment at ``scale``."""
        return cls(SecretsConfig.for_scale(scale))


@dataclass
class Run:
    """The trained model with its extraction table (one row per secret), the extraction rate per number of copies,
    and the same model trained on the corpus with its exact duplicates removed (the page's exercise)."""

    trained: SecretsModel
    rates: pd.DataFrame
    deduped: SecretsModel


def keep_one_copy(documents: list[str]) -> list[str]:
    """Exact deduplication: the first copy of every document, in corpus order."""
    return list(dict.fromkeys(documents))


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Build the corpus with its secrets, train the tiny GPT on it, and try to extract every secret; the same on
    the exactly deduplicated corpus.

    The two trainings are independent, so they run side by side (:mod:`halluc_lib.core.parallel`; a worker
    draws no progress bar)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a duplicates.Config; got {type(config).__name__}")
    train = partial(secrets_model, config.secrets, seed=seed, device=device, progress=progress)
    trained, deduped = parallel.side_by_side([train, partial(train, corpus_filter=keep_one_copy)], device=device)
    return Run(trained, extraction_rate(trained.table), deduped)
