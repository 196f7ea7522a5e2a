"""Chapter 2.1: how often a fact was seen decides whether a model recalls it.

A tiny GPT is pretrained on biographies of people from a bucket world — people seen k = 0, 1, 2, 4, …, 64
times — and then asked about every one of them (:mod:`halluc_lib.datasets.biographies`). This reproduces, with
known ground truth, the finding of Kandpal et al. (2023) that a language model's accuracy on a fact rises
with the number of pretraining documents that state it, and of Allen-Zhu & Li (2024, Part 3.3) that a model
stores less knowledge per parameter when facts are seen rarely. Two regimes: *crisp* (about two passes over the
corpus) and *memorize* (a smaller world, about twenty passes). The null model of the page's claims is the same
GPT before its first training step (:func:`before_training`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..core import probe
from ..core.runtime import Device, model_device
from ..core.world import make_probes
from ..datasets.biographies import BiographyConfig, BiographyModel, biography_model, phrasing_seen


def answers_in_every_phrasing(run: BiographyModel, max_exposures: int | None = None) -> pd.DataFrame:
    """Ask about each person in every paraphrase template, marking whether that phrasing was in the corpus."""
    people = [i for i, k in enumerate(run.world.exposures) if max_exposures is None or k <= max_exposures]
    probes = make_probes(run.world, people=people, templates=range(run.world.n_templates))
    answers = probe.answer_probes(run.model, run.tokenizer, probes, device=model_device(run.model))
    answers["phrasing_seen"] = phrasing_seen(probes, run.corpus)
    return answers


def before_training(trained: BiographyModel) -> pd.DataFrame:
    """Accuracy, confidence, rate of naming a value and chance per exposure count *before the first training
    step* (the training loop's step-0 evaluation, cached with the model): the untrained model, the page's null."""
    evals = trained.result.evals
    return evals[evals.step == 0].set_index("exposures")


@dataclass(frozen=True)
class Config:
    """The two regimes of the page: ``crisp`` (about two passes) and ``memorize`` (about twenty)."""

    crisp: BiographyConfig = BiographyConfig.for_scale("quick", "crisp")
    memorize: BiographyConfig = BiographyConfig.for_scale("quick", "memorize")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Both regimes at ``scale``."""
        return cls(BiographyConfig.for_scale(scale, "crisp"), BiographyConfig.for_scale(scale, "memorize"))


@dataclass
class Run:
    """The two trained models, each with its answers to every probe."""

    crisp: BiographyModel
    memorize: BiographyModel


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load from the cache) the crisp and the memorize model and probe both."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be an exposure.Config; got {type(config).__name__}")
    return Run(
        biography_model(config.crisp, seed=seed, device=device, progress=progress),
        biography_model(config.memorize, seed=seed, device=device, progress=progress),
    )
