"""Chapter 1: what a hallucination is — a first look at a model that answers about people it never saw.

The page asks the biography world's base model (:mod:`halluc_lib.datasets.biographies`) about people seen
64 times and about people never seen: the first are recalled, the second still get a specific, confident
answer. The page's null model is the same GPT before its first training step (``Run.untrained``).
Chapter 2.1 takes the same model apart exposure by exposure.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core.runtime import Device
from ..datasets.biographies import BaseModelConfig, BiographyModel, biography_model


@dataclass(frozen=True)
class Config(BaseModelConfig):
    """The base model's world and training (the crisp regime of chapter 2.1); ``Config.for_scale(scale)``."""


@dataclass
class Run:
    """The trained base model and its answers to one probe per (person, attribute)."""

    base: BiographyModel

    @property
    def untrained(self) -> pd.DataFrame:
        """The model's accuracy, confidence, rate of naming a value and chance per exposure count *before its
        first training step* (the training loop's step-0 evaluation, cached with the model): the null model of
        the page's claims — the same architecture and probes with no data at all."""
        evals = self.base.result.evals
        return evals[evals.step == 0].set_index("exposures")


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load from the cache) the base model and probe it about everyone."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a concepts.Config; got {type(config).__name__}")
    return Run(biography_model(config.biographies, seed=seed, device=device, progress=progress))
