"""Repeating chosen facts on purpose: selective upweighting on the fact world (chapter 4.1, second half).

Kalai & Vempala's bound (chapter 2.2) says a model's hallucination rate is at least the monofact rate of its
training data *minus its miscalibration*. Miao & Kearns (2025) took the second term at its word: repeating a
small share of the training statements (about 5%) makes the model deliberately miscalibrated — it writes
those statements far more often than the data warrant — and its generations hallucinate less, at the price of
covering fewer facts. Repeating the *rare* statements instead lowers the first term too: a fact seen once
becomes a fact seen many times, and the model learns it.

The experiment trains the chapter 2.2 model on the same statements three ways — as they are, with a random 5%
repeated, and with 5% chosen among the monofacts repeated — for the same number of steps. Training longer
alone lowers the hallucination rate of free generation (the model overfits, chapter 2.2), so the copies take
the place of other statements rather than coming on top.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .monofacts import (
    ATTRIBUTE,
    MonofactConfig,
    corpus_monofact_rate,
    heldout_ids,
    heldout_nll,
    judge,
    make_population,
    sample_statements,
    statement_model,
)
from .runtime import check_positive_int, check_probability, check_scale
from .world import Probe

STRATEGIES = ("none", "random", "rare")


@dataclass(frozen=True)
class UpweightingConfig:
    """Which share of the statements is repeated, how many extra times, and how long every model trains."""

    share: float = 0.05
    repeats: int = 10
    epochs: int = 15

    def __post_init__(self):
        check_probability("share", self.share, open_low=True)
        check_positive_int("repeats", self.repeats)
        check_positive_int("epochs", self.epochs)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> UpweightingConfig:
        check_scale(scale)
        return cls()


def upweighted_corpus(train_people, strategy: str, share: float, repeats: int, seed: int = 0):
    """The training statements (as the person each is about) with ``share`` of them repeated ``repeats`` more
    times, and the indices of the repeated statements.

    ``strategy``: ``"none"`` (nothing repeated), ``"random"`` (any statements, as Miao & Kearns did) or
    ``"rare"`` (statements whose person the corpus mentions exactly once).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}")
    check_probability("share", share, open_low=True)
    check_positive_int("repeats", repeats)
    people = np.asarray(train_people)
    if strategy == "none":
        return people, np.array([], dtype=int)
    n = round(share * len(people))
    rng = np.random.default_rng([seed, 49])
    if strategy == "random":
        pool = np.arange(len(people))
    else:
        counts = Counter(people.tolist())
        pool = np.array([i for i, p in enumerate(people.tolist()) if counts[p] == 1])
    if n > len(pool):
        raise ValueError(f"share={share} asks to repeat {n} statements; only {len(pool)} qualify for {strategy!r}")
    chosen = np.sort(rng.choice(pool, size=n, replace=False))
    return np.concatenate([people, np.repeat(people[chosen], repeats)]), chosen


def recall_probes(population, people) -> list[Probe]:
    """Cloze questions "First Last was born in" for ``people``: does the model know their city?"""
    return [
        Probe(
            person=int(p),
            attribute=ATTRIBUTE,
            prompt=f"{population.world.names[p]} was born in",
            answer=population.world.values[p][0],
            exposures=0,
            template=0,
        )
        for p in people
    ]


@dataclass
class UpweightingRun:
    config: UpweightingConfig
    summary: pd.DataFrame  # one row per strategy
    recall: pd.DataFrame  # per strategy: recall of the statements the "rare" strategy repeated


def run_upweighting(
    config: UpweightingConfig,
    statements: MonofactConfig,
    *,
    seed: int = 0,
    device="auto",
    progress: bool = True,
) -> UpweightingRun:
    """Train one model per strategy on the same statements for the same number of steps; judge each."""
    from . import batching, probe
    from .train import TrainConfig, train

    if not isinstance(config, UpweightingConfig):
        raise TypeError(f"config must be an UpweightingConfig; got {type(config).__name__}")
    if not isinstance(statements, MonofactConfig):
        raise TypeError(f"statements must be a MonofactConfig; got {type(statements).__name__}")
    population = make_population(statements.n_people, statements.exponent, seed=seed)
    rng = np.random.default_rng([seed, 21])
    train_people = population.draw(statements.n_statements, rng)
    heldout_people = population.draw(statements.heldout_statements, rng)
    _, rare_chosen = upweighted_corpus(train_people, "rare", config.share, config.repeats, seed)
    rare_people = train_people[rare_chosen]
    steps = config.epochs * -(-len(train_people) // statements.batch_size)  # the same for every strategy
    rows, recall = [], []
    for strategy in STRATEGIES:
        people, chosen = upweighted_corpus(train_people, strategy, config.share, config.repeats, seed)
        tok, model = statement_model(population, statements, seed)
        corpus = [population.statement(int(p)) for p in people]
        batches = batching.LMBatches.from_texts(corpus, tok, batch_size=statements.batch_size, seed=seed)
        result = train(
            model, batches, TrainConfig(steps=steps, lr=statements.lr, seed=seed), device=device, progress=progress
        )
        texts = sample_statements(model, tok, statements.n_generations, seed=seed, device=device)
        judged = judge(population, texts, people)
        true = judged[judged["true"]]
        repeated = {population.statement(int(p)) for p in train_people[chosen]}
        answers = probe.answer_probes(model, tok, recall_probes(population, rare_people), device=device)
        rows.append(
            {
                "strategy": strategy,
                "statements": len(people),
                "monofact_rate": corpus_monofact_rate(people),
                "hallucination_rate": judged.hallucination.mean(),
                "malformed_rate": judged.malformed.mean(),
                "distinct_true_facts": true.statement.nunique(),
                "share_of_repeated": judged.statement.isin(repeated).mean(),
                "heldout_nll": heldout_nll(model, heldout_ids(population, tok, heldout_people)),
                "steps": steps,
                "train_seconds": result.seconds,
            }
        )
        recall.append(answers.assign(strategy=strategy))
    return UpweightingRun(config, pd.DataFrame(rows), pd.concat(recall, ignore_index=True))
