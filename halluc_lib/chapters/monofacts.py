"""Facts seen once must be hallucinated: the monofact experiment (chapter 2.2).

Kalai & Vempala (2024) prove that a language model which is *calibrated* — which generates statements with
the same statistics as its training data — hallucinates at a rate close to the training data's monofact rate:
the fraction of training statements whose fact occurs exactly once (the Good–Turing estimate of the
probability of facts never seen, chapter 3.4).

Here people have Zipf-distributed popularity; a corpus is ``n`` statements "X was born in Y ." about people
drawn by popularity. A *generation* is a statement the model writes from scratch (sampling every token at
temperature 1 after the document separator); it is a *hallucination* when it is false: the person has
another birth city, or does not exist in the world at all.

The counting model (:func:`counting_model_generations`) is *built* to hallucinate at the monofact rate; it shows
what calibrated generation looks like. The findings are about the tiny GPT: whom its hallucinations are about
(against the share of all its statements about those people, :func:`generation_summary`) and where it ends
relative to the line (against the counting model trained on the same statements, ``Run.counting_on_training``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..core.recipes import Budget
from ..core.runtime import Device, check_positive_int, resolve_device
from ..datasets.statements import (
    CITIES,
    TEMPLATE,
    Population,
    StatementsConfig,
    corpus_monofact_rate,
    heldout_ids,
    heldout_nll,
    judge,
    make_population,
    sample_statements,
    statement_tokenizer,
    train_statement_model,
)


@dataclass(frozen=True)
class Config:
    """The statement world (shared with chapter 4.1), the corpus sizes of the counting model, and the epochs
    at which the tiny GPT's generations are judged."""

    statements: StatementsConfig = StatementsConfig()
    corpus_sizes: tuple[int, ...] = (1000, 3000, 10000, 30000)
    epochs: tuple[int, ...] = (1, 10, 30)

    def __post_init__(self):
        if not isinstance(self.statements, StatementsConfig):
            raise TypeError(f"statements must be a StatementsConfig; got {type(self.statements).__name__}")
        for name in ("corpus_sizes", "epochs"):
            if not getattr(self, name):
                raise ValueError(f"{name} must name at least one value")
            for value in getattr(self, name):
                check_positive_int(name, value)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The statement world at ``scale``; the same corpus sizes and epochs at both scales."""
        return cls(statements=StatementsConfig.for_scale(scale))


def counting_model_generations(population: Population, train_people: Sequence[int], n: int, seed: int = 0) -> list[str]:
    """Generations of the calibrated *counting* model: it reproduces training statements in proportion to
    their counts, except that with probability N1/n (the Good–Turing missing mass) it writes about someone it
    has not seen, with a uniformly random city — exactly as calibrated as the data allow."""
    n = check_positive_int("n", n)
    rng = np.random.default_rng([seed, 23])
    train_people = np.asarray(train_people)
    missing = corpus_monofact_rate(train_people)
    seen = set(train_people.tolist())
    unseen = np.array([i for i in range(population.world.n_people) if i not in seen])
    cities = CITIES
    out = []
    for _ in range(n):
        if rng.random() < missing and unseen.size:
            person = int(rng.choice(unseen))
            out.append(TEMPLATE.format(name=population.world.names[person], value=cities[rng.integers(len(cities))]))
        else:
            out.append(population.statement(int(rng.choice(train_people))))
    return out


def generation_summary(judged: pd.DataFrame) -> dict[str, float]:
    """What the page reports about judged generations (:func:`~halluc_lib.datasets.statements.judge`): the
    hallucination and malformed rates, the share of hallucinations about people seen at most once in training
    (or not existing), and — that share's null — the share of *all* well-formed statements about such people."""
    halluc = judged[judged.hallucination]
    well_formed = judged[~judged.malformed]
    return {
        "hallucination_rate": judged.hallucination.mean(),
        "malformed_rate": judged.malformed.mean(),
        "share_of_hallucinations_seen_at_most_once": (halluc.times_seen <= 1).mean() if len(halluc) else np.nan,
        "share_of_statements_seen_at_most_once": (well_formed.times_seen <= 1).mean() if len(well_formed) else np.nan,
    }


@dataclass
class Run:
    """The counting model at every corpus size, and the tiny GPT's generations judged during and after training."""

    config: Config
    population: Population
    counting: pd.DataFrame  # per corpus size: monofact rate and the counting model's hallucination rate
    training: pd.DataFrame  # per evaluated epoch: the GPT's hallucination rate, held-out NLL, ...
    judged: pd.DataFrame  # the GPT's final generations, judged
    train_people: np.ndarray
    model: object
    tokenizer: object
    counting_on_training: float  # the counting model's hallucination rate on the GPT's own training statements


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """The counting model at every corpus size, then a tiny GPT trained for ``max(epochs)`` passes, and the
    counting model on the GPT's own training statements (the null of the GPT's findings)."""

    if not isinstance(config, Config):
        raise TypeError(f"config must be a monofacts.Config; got {type(config).__name__}")
    population = make_population(config.statements.n_people, config.statements.exponent, seed=seed)
    rng = np.random.default_rng([seed, 21])
    counting = []
    for n in config.corpus_sizes:
        people = population.draw(n, rng)
        judged = judge(
            population, counting_model_generations(population, people, config.statements.n_generations, seed), people
        )
        counting.append(
            {
                "statements": n,
                "monofact_rate": corpus_monofact_rate(people),
                "hallucination_rate": judged.hallucination.mean(),
            }
        )

    train_people = population.draw(config.statements.n_statements, rng)
    heldout_people = population.draw(config.statements.heldout_statements, rng)
    tok = statement_tokenizer(population)
    corpus = [population.statement(int(p)) for p in train_people]
    heldout = heldout_ids(population, tok, heldout_people)
    per_epoch = -(-len(corpus) // config.statements.batch_size)  # one statement per document
    marks = {e * per_epoch: e for e in config.epochs}
    dev = resolve_device(device)

    def evaluate(model: torch.nn.Module, step):
        if step not in marks:
            return None
        texts = sample_statements(model, tok, config.statements.n_generations, seed=seed + step, device=dev)
        judged = judge(population, texts, train_people)
        return {"epoch": marks[step], **generation_summary(judged), "heldout_nll": heldout_nll(model, heldout)}

    trained = train_statement_model(
        corpus,
        tok,
        config.statements,
        Budget(epochs=max(config.epochs)),
        seed=seed,
        device=dev,
        eval_fn=evaluate,
        eval_every=per_epoch,
        progress=progress,
    )
    model, result = trained.model, trained.result
    final = judge(
        population, sample_statements(model, tok, config.statements.n_generations, seed=seed, device=dev), train_people
    )
    # the null of the GPT's place relative to the line: a calibrated generator of the same training statements
    counting_on_training = judge(
        population,
        counting_model_generations(population, train_people, config.statements.n_generations, seed),
        train_people,
    ).hallucination.mean()
    return Run(
        config,
        population,
        pd.DataFrame(counting),
        result.evals.drop(columns="step"),
        final,
        train_people,
        model,
        tok,
        counting_on_training=float(counting_on_training),
    )
