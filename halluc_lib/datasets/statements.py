"""Statements "NAME was born in CITY ." about a population with Zipf popularity (chapters 2.2 and 4.1).

The population, the statements drawn from it, free generation from a model trained on them, and the judge
that sorts each generated statement into true, hallucinated or malformed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import recipes
from ..core.losses import causal_lm_loss
from ..core.metrics import monofact_rate
from ..core.probe import extend_tokens
from ..core.recipes import Budget, ModelSize, Trained
from ..core.runtime import Device, check_positive_int, check_scale, model_device, resolve_device
from ..core.tokenizer import build_tokenizer
from ..core.train import EvalFn
from ..core.world import ATTRIBUTES, FIRST_NAMES, LAST_NAMES, World, make_world

ATTRIBUTE = "birth_city"


CITIES = ATTRIBUTES[ATTRIBUTE].values


TEMPLATE = "{name} was born in {value} ."


@dataclass
class Population:
    """A world whose people have popularity weights: how likely each is to be written about."""

    world: World
    weights: np.ndarray
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.index = {name: i for i, name in enumerate(self.world.names)}

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` people drawn by popularity (with replacement): who the corpus talks about."""
        return rng.choice(self.world.n_people, size=n, p=self.weights)

    def statement(self, person: int) -> str:
        return TEMPLATE.format(name=self.world.names[person], value=self.world.values[person][0])


def make_population(n_people: int, exponent: float, seed: int = 0) -> Population:
    """A one-attribute world (birth city, one phrasing) with Zipf popularity over its people."""
    n_people = check_positive_int("n_people", n_people)
    world = make_world(
        np.zeros(n_people, dtype=np.int64),
        seed=seed,
        n_templates=1,
        attributes=(ATTRIBUTE,),
        schedule=f"Zipf popularity, exponent {exponent}",
    )
    rng = np.random.default_rng([seed, 22])
    ranks = rng.permutation(n_people) + 1
    weights = ranks ** (-float(exponent))
    return Population(world, weights / weights.sum())


def corpus_monofact_rate(people: Sequence[int]) -> float:
    """Monofact rate of a corpus given as the person each statement is about (one fact per person)."""
    return monofact_rate(list(people))


def judge(population: Population, generations: Sequence[str], train_people: Sequence[int]) -> pd.DataFrame:
    """One row per generated statement: its person (if any), whether it is true, how often that person was seen.

    A statement that does not have the form "First Last was born in City ." is ``malformed``; a well-formed
    statement is a *hallucination* when it is false, including statements about people who do not exist.
    """
    seen = Counter(int(p) for p in train_people)
    values = set(CITIES)
    rows = []
    for text in generations:
        words = text.split()
        ok = len(words) == 7 and words[2:5] == ["was", "born", "in"] and words[6] == "." and words[5] in values
        name = " ".join(words[:2]) if ok else None
        person = population.index.get(name) if ok else None
        true = ok and person is not None and population.world.values[person][0] == words[5]
        rows.append(
            {
                "statement": text,
                "malformed": not ok,
                "exists": person is not None,
                "true": bool(true),
                "hallucination": bool(ok and not true),
                "times_seen": seen.get(person, 0) if person is not None else 0,
            }
        )
    return pd.DataFrame(rows)


@torch.inference_mode()
def sample_statements(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    n: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    length: int = 7,
    device: Device = "auto",
    batch_size: int = 1000,
) -> list[str]:
    """Let the model write ``n`` statements from scratch: ``length`` tokens sampled after the separator."""
    n = check_positive_int("n", n)
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 for sampling; got {temperature!r}")
    device = resolve_device(device)
    model.eval()
    model.to(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    texts = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        ids = torch.full((m, 1), tokenizer.eos_token_id, device=device)
        ids = extend_tokens(model, ids, length, temperature=temperature, generator=generator)
        texts += [" ".join(tokenizer.convert_ids_to_tokens(row[1:].tolist())) for row in ids.cpu()]
    return texts


def name_vocabulary() -> list[str]:
    """Every first and last name, so a model can write about people outside its training data."""
    return list(FIRST_NAMES + LAST_NAMES)


@dataclass(frozen=True)
class StatementsConfig:
    """The statement world shared by chapters 2.2 and 4.1: population, corpus, model size and training rate."""

    n_people: int = 5000
    exponent: float = 1.0
    n_statements: int = 3000
    heldout_statements: int = 2000
    n_generations: int = 3000
    size: ModelSize = ModelSize()
    batch_size: int = 64
    lr: float = 3e-3

    def __post_init__(self):
        for name in ("n_people", "n_statements", "heldout_statements", "n_generations", "batch_size"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.size, ModelSize):
            raise TypeError(f"size must be a ModelSize; got {type(self.size).__name__}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> StatementsConfig:
        """Quick: 5,000 people, 3,000 statements, the quick model; full: 14,000 people, 10,000 statements."""
        if check_scale(scale) == "quick":
            return cls()
        return cls(n_people=14000, n_statements=10000, n_generations=10000, size=ModelSize.for_scale("full"))


def statement_tokenizer(population: Population) -> PreTrainedTokenizerBase:
    """The word-level tokenizer for ``population``'s statements (every name, so new people can be written)."""
    return build_tokenizer(population.world.vocabulary())


def train_statement_model(
    statements: Sequence[str],
    tokenizer: PreTrainedTokenizerBase,
    config: StatementsConfig,
    budget: Budget | int,
    *,
    seed: int = 0,
    device: Device = "auto",
    eval_fn: EvalFn | None = None,
    eval_every: int | None = None,
    progress: bool = True,
) -> Trained:
    """A tiny GPT of ``config.size`` trained on ``statements`` (one document each) with the one loop
    (:func:`halluc_lib.core.recipes.train_lm`); statements are short, so 16 positions suffice."""
    return recipes.train_lm(
        list(statements),
        tokenizer,
        config.size,
        budget,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        device=device,
        n_positions=16,
        eval_fn=eval_fn,
        eval_every=eval_every,
        progress=progress,
    )


def heldout_ids(population: Population, tokenizer: PreTrainedTokenizerBase, people: Sequence[int]) -> torch.Tensor:
    """Held-out statements about ``people`` as one tensor of token ids, each after the document separator."""
    ids = tokenizer([population.statement(int(p)) for p in people], add_special_tokens=False)["input_ids"]
    return torch.tensor([[tokenizer.eos_token_id, *d] for d in ids])


@torch.inference_mode()
def heldout_nll(model: torch.nn.Module, ids: torch.Tensor) -> float:
    """Mean next-token negative log-likelihood of held-out statements: the calibration cost of overfitting."""

    model.eval()
    return causal_lm_loss(model(input_ids=ids.to(model_device(model))).logits.float().cpu(), ids).item()
