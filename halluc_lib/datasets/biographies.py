"""The biography world's base model: a tiny GPT pretrained on biographies of people seen k = 0, 1, 2, 4, … times.

Chapters 1, 2.1, 3.3, 3.5, 4.3, 4.5 and 4.6 all ask questions of this model. :func:`biography_model` builds the
world (seeded), trains the model with the one loop, caches it by its configuration
(:mod:`halluc_lib.core.cache`), and probes it about every person; a later page with the same configuration
and seed loads it from the cache instead of training again, and a page run alone trains it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Self

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import probe, recipes
from ..core.recipes import ModelSize
from ..core.runtime import Device, check_positive_int, check_scale, model_device
from ..core.tokenizer import world_tokenizer
from ..core.train import TrainResult
from ..core.world import World, bucket_world, build_corpus, make_probes


@dataclass(frozen=True)
class BiographyConfig:
    """The biography world (people per exposure bucket), the model's size and its training."""

    buckets: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 32, 64)
    per_bucket: int = 150
    n_templates: int = 4
    size: ModelSize = ModelSize()
    batch_size: int = 64
    steps: int = 600
    lr: float = 1e-2
    eval_every: int = 150

    def __post_init__(self):
        if not self.buckets:
            raise ValueError("buckets must name at least one exposure count")
        for k in self.buckets:
            check_positive_int("buckets", k, allow_zero=True)
        for name in ("per_bucket", "n_templates", "batch_size", "steps", "eval_every"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.size, ModelSize):
            raise TypeError(f"size must be a ModelSize; got {type(self.size).__name__}")

    @classmethod
    def for_scale(cls, scale: str = "quick", regime: str = "crisp") -> BiographyConfig:
        """The sizes used by the book.

        ``regime="crisp"`` trains for about two passes over the corpus, where recall depends sharply on
        exposure; ``regime="memorize"`` trains a smaller world for about twenty passes, where every seen
        fact is memorised and only never-seen people are still guessed.
        """
        check_scale(scale)
        regimes = ("crisp", "memorize")
        if regime not in regimes:
            raise ValueError(f"regime must be one of {regimes}; got {regime!r}")
        # The 4-layer, 256-wide model of the full scale does not train at the small model's lr of 1e-2: it stays
        # at chance (measured: memorize regime, loss 2.12 after 600 steps, against 0.56 at 3e-3; on a GPU, crisp
        # regime, accuracy at 64 exposures 0.03 at 1e-2, 0.64 at 3e-3, 0.89 at 1.5e-3 after 600 steps).
        larger = {"size": ModelSize.for_scale("full")}
        if regime == "crisp":
            quick = cls()
            full = replace(quick, per_bucket=600, batch_size=256, steps=800, lr=1.5e-3, **larger)
        else:
            quick = cls(buckets=(0, 1, 2, 4, 8), per_bucket=30, batch_size=32, steps=600, eval_every=60)
            full = replace(quick, per_bucket=120, steps=2400, eval_every=240, lr=3e-3, **larger)
        return quick if scale == "quick" else full


@dataclass(frozen=True)
class BaseModelConfig:
    """The configuration of a page that asks questions of the base model: its world and training (the crisp
    regime of chapter 2.1). Pages that need more extend it (chapter 3.5 adds the attribute asked about)."""

    biographies: BiographyConfig = BiographyConfig()

    def __post_init__(self):
        if not isinstance(self.biographies, BiographyConfig):
            raise TypeError(f"biographies must be a BiographyConfig; got {type(self.biographies).__name__}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Self:
        """The crisp biography world at ``scale`` (the page's other fields at their defaults)."""
        return cls(BiographyConfig.for_scale(scale))


@dataclass
class BiographyModel:
    """The world, the trained model and how it trained, and its answers (one row per person and attribute)."""

    config: BiographyConfig
    world: World
    tokenizer: object
    model: object
    result: TrainResult
    answers: pd.DataFrame
    corpus: list[str]
    from_cache: bool


def evaluate_by_exposure(tokenizer: PreTrainedTokenizerBase, probes):
    """An evaluation function for the training loop: the model's accuracy, confidence and rate of naming a
    valid value on ``probes``, per exposure count, at every evaluation step."""

    def evaluate(model: torch.nn.Module, step):
        answers = probe.answer_probes(model, tokenizer, probes, device=model_device(model))
        return summarize_by_exposure(answers).to_dict("records")

    return evaluate


def summarize_by_exposure(answers: pd.DataFrame) -> pd.DataFrame:
    """Per exposure count: accuracy, mean confidence, and how often the model names a valid value at all."""
    return (
        answers.assign(names_a_value=probe.names_a_value(answers))
        .groupby("exposures", as_index=False)
        .agg(
            accuracy=("correct", "mean"),
            confidence=("confidence", "mean"),
            names_a_value=("names_a_value", "mean"),
            chance=("chance", "mean"),
        )
    )


def biography_model(
    config: BiographyConfig,
    *,
    seed: int = 0,
    device: Device = "auto",
    cache: bool = True,
    progress: bool = True,
) -> BiographyModel:
    """Build the world (seeded by ``seed``), train the tiny GPT on it (or load it from the cache), probe it."""
    if not isinstance(config, BiographyConfig):
        raise TypeError(f"config must be a BiographyConfig; got {type(config).__name__}")
    world = bucket_world(config.buckets, config.per_bucket, seed=seed, n_templates=config.n_templates)
    tok = world_tokenizer(world)
    corpus = build_corpus(world, seed=seed)
    probes = make_probes(world)
    key = {"experiment": "biographies", "world": world.checksum(), "config": asdict(config), "seed": seed}
    trained = recipes.train_lm(
        corpus,
        tok,
        config.size,
        config.steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        device=device,
        eval_fn=evaluate_by_exposure(tok, probes),
        eval_every=config.eval_every,
        cache_key=key if cache else None,
        progress=progress,
    )
    answers = probe.answer_probes(trained.model, tok, probes, device=device)
    answers["phrasing_seen"] = phrasing_seen(probes, corpus)
    return BiographyModel(config, world, tok, trained.model, trained.result, answers, corpus, trained.from_cache)


def phrasing_seen(probes, corpus: list[str]) -> list[bool]:
    """For each probe, whether its exact prompt was followed by an answer somewhere in the corpus.

    A fact seen once is seen in one phrasing; asked in another, the model must *extract* the fact rather than
    complete a memorised string — which small models trained without paraphrase augmentation do poorly
    (Allen-Zhu & Li, 2023, Part 3.1).
    """
    stems = {sentence.strip().rsplit(" ", 1)[0] for doc in corpus for sentence in doc.split(" .") if sentence.strip()}
    return [p.prompt in stems for p in probes]
