"""Facts seen once must be hallucinated: the monofact experiment (chapter 2.2).

Kalai & Vempala (2024) prove that a language model which is *calibrated* — which generates statements with
the same statistics as its training data — hallucinates at a rate close to the training data's monofact rate:
the fraction of training statements whose fact occurs exactly once (the Good–Turing estimate of the
probability of facts never seen, chapter 3.4).

Here people have Zipf-distributed popularity; a corpus is ``n`` statements "X was born in Y ." about people
drawn by popularity. A *generation* is a statement the model writes from scratch (sampling every token at
temperature 1 after the document separator); it is a *hallucination* when it is false: the person has
another birth city, or does not exist in the world at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from .metrics import monofact_rate
from .probe import extend_tokens
from .runtime import check_positive_int, check_scale, model_device, resolve_device
from .world import ATTRIBUTES, FIRST_NAMES, LAST_NAMES, World, make_world

ATTRIBUTE = "birth_city"
CITIES = ATTRIBUTES[ATTRIBUTE].values
TEMPLATE = "{name} was born in {value} ."


@dataclass(frozen=True)
class MonofactConfig:
    """World, corpus and training sizes of the monofact experiment."""

    n_people: int = 5000
    exponent: float = 1.0
    n_statements: int = 3000
    corpus_sizes: tuple[int, ...] = (1000, 3000, 10000, 30000)
    n_generations: int = 3000
    epochs: tuple[int, ...] = (1, 10, 30)
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    heldout_statements: int = 2000

    @classmethod
    def for_scale(cls, scale: str = "quick") -> MonofactConfig:
        check_scale(scale)
        if scale == "quick":
            return cls()
        return cls(n_people=14000, n_statements=10000, n_generations=10000, n_layer=4, n_embd=256, n_head=8)


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


@torch.inference_mode()
def sample_statements(
    model,
    tokenizer,
    n: int,
    *,
    temperature: float = 1.0,
    seed: int = 0,
    length: int = 7,
    device="auto",
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


@dataclass
class MonofactRun:
    config: MonofactConfig
    population: Population
    counting: pd.DataFrame  # per corpus size: monofact rate and the counting model's hallucination rate
    training: pd.DataFrame  # per evaluated epoch: the GPT's hallucination rate, held-out NLL, ...
    judged: pd.DataFrame  # the GPT's final generations, judged
    train_people: np.ndarray
    model: object
    tokenizer: object


def statement_model(population: Population, config: MonofactConfig, seed: int = 0):
    """The tokenizer for ``population``'s statements and a fresh tiny GPT of ``config``'s size for them."""
    from . import models
    from .tokenizer import build_tokenizer

    tok = build_tokenizer(population.world.vocabulary())
    torch.manual_seed(seed)
    model = models.tiny_gpt(tok, n_layer=config.n_layer, n_embd=config.n_embd, n_head=config.n_head, n_positions=16)
    return tok, model


def heldout_ids(population: Population, tokenizer, people: Sequence[int]) -> torch.Tensor:
    """Held-out statements about ``people`` as one tensor of token ids, each after the document separator."""
    ids = tokenizer([population.statement(int(p)) for p in people], add_special_tokens=False)["input_ids"]
    return torch.tensor([[tokenizer.eos_token_id, *d] for d in ids])


@torch.inference_mode()
def heldout_nll(model, ids: torch.Tensor) -> float:
    """Mean next-token negative log-likelihood of held-out statements: the calibration cost of overfitting."""
    from .objectives import causal_lm_loss

    model.eval()
    return causal_lm_loss(model(input_ids=ids.to(model_device(model))).logits.float().cpu(), ids).item()


def run_monofacts(config: MonofactConfig, *, seed: int = 0, device="auto", progress: bool = True) -> MonofactRun:
    """The counting model at every corpus size, then a tiny GPT trained for ``max(epochs)`` passes."""
    from . import batching
    from .train import TrainConfig, train

    if not isinstance(config, MonofactConfig):
        raise TypeError(f"config must be a MonofactConfig; got {type(config).__name__}")
    population = make_population(config.n_people, config.exponent, seed=seed)
    rng = np.random.default_rng([seed, 21])
    counting = []
    for n in config.corpus_sizes:
        people = population.draw(n, rng)
        judged = judge(population, counting_model_generations(population, people, config.n_generations, seed), people)
        counting.append(
            {
                "statements": n,
                "monofact_rate": corpus_monofact_rate(people),
                "hallucination_rate": judged.hallucination.mean(),
            }
        )

    train_people = population.draw(config.n_statements, rng)
    heldout_people = population.draw(config.heldout_statements, rng)
    tok, model = statement_model(population, config, seed)
    corpus = [population.statement(int(p)) for p in train_people]
    heldout = heldout_ids(population, tok, heldout_people)
    batches = batching.LMBatches.from_texts(corpus, tok, batch_size=config.batch_size, seed=seed)
    per_epoch = batches.batches_per_epoch()
    marks = {e * per_epoch: e for e in config.epochs}
    dev = resolve_device(device)

    def evaluate(model, step):
        if step not in marks:
            return None
        texts = sample_statements(model, tok, config.n_generations, seed=seed + step, device=dev)
        judged = judge(population, texts, train_people)
        halluc = judged[judged.hallucination]
        return {
            "epoch": marks[step],
            "hallucination_rate": judged.hallucination.mean(),
            "malformed_rate": judged.malformed.mean(),
            "share_of_hallucinations_seen_at_most_once": (halluc.times_seen <= 1).mean() if len(halluc) else np.nan,
            "heldout_nll": heldout_nll(model, heldout),
        }

    steps = max(config.epochs) * per_epoch
    result = train(
        model,
        batches,
        TrainConfig(steps=steps, lr=config.lr, eval_every=per_epoch, seed=seed),
        device=dev,
        eval_fn=evaluate,
        progress=progress,
    )
    final = judge(population, sample_statements(model, tok, config.n_generations, seed=seed, device=dev), train_people)
    return MonofactRun(
        config, population, pd.DataFrame(counting), result.evals.drop(columns="step"), final, train_people, model, tok
    )
