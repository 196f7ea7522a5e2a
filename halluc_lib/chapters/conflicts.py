"""Stale and conflicting facts (chapter 2.6).

Two ways the training data can be wrong about a fact even when it states it often:

* **conflicting**: the corpus states one value for a person ``majority`` times and another ``minority`` times
  (an old and a new employer, a rumour and a correction). A model trained to predict text answers with the
  more frequent value — the data's vote, not the truth;
* **stale**: the world changed after the corpus was collected. Given a passage with the new value in its
  context, does the model follow the passage or its memory? The *memorisation ratio*
  p(old) / (p(old) + p(new)) of Longpre et al. (2021) measures it; training on passages that disagree with
  memory lowers it.

People come in three disjoint groups: ``vote`` people (conflicting statements), ``memory`` people (stated
consistently; used to measure the memorisation ratio) and ``context`` people (only in the variant that also
trains on counterfactual passages), so the ratio is measured on people the passages never mentioned. The same
measures on the untrained model (the initial weights of both variants) are the page's null: a model that has
read nothing prefers neither the majority nor its memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import recipes
from ..core.recipes import Budget, ModelSize
from ..core.runtime import Device, check_positive_int, check_scale, resolve_device
from ..core.tokenizer import build_tokenizer
from ..core.world import ATTRIBUTES, World, make_world

ATTRIBUTE = "employer"
STATEMENT = "{name} works for {value} ."


@dataclass(frozen=True)
class Config:
    """People per group, how often each group's facts are stated, the model's size and its training."""

    people_per_group: int = 100
    majority: int = 6
    minority: int = 2
    memory_statements: int = 6
    passages: int = 2  # consistent two-sentence passages per memory person
    counterfactual_passages: int = 10  # per context person, in the variant that has them
    size: ModelSize = ModelSize()
    batch_size: int = 64
    epochs: int = 25
    lr: float = 1e-2

    def __post_init__(self):
        for name in (
            "people_per_group",
            "majority",
            "minority",
            "memory_statements",
            "passages",
            "batch_size",
            "epochs",
        ):
            check_positive_int(name, getattr(self, name))
        check_positive_int("counterfactual_passages", self.counterfactual_passages, allow_zero=True)
        if self.minority >= self.majority:
            raise ValueError(f"minority must be below majority; got minority={self.minority}, majority={self.majority}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 100 people per group, the quick model; full: 500 per group, the full model at lr 3e-3."""
        if check_scale(scale) == "quick":
            return cls()
        return cls(people_per_group=500, size=ModelSize.for_scale("full"), lr=3e-3)


def _other(values, value, rng):
    choice = value
    while choice == value:
        choice = values[rng.integers(len(values))]
    return choice


def passage(name: str, value: str) -> str:
    """Two sentences stating the same value: the form in which the model later reads a context."""
    return f"{STATEMENT.format(name=name, value=value)} {STATEMENT.format(name=name, value=value)}"


def conflict_world(config: Config, seed: int = 0) -> tuple[World, pd.DataFrame]:
    """The world (three groups of people) and a table of each person's group, old value and second value."""
    n = check_positive_int("people_per_group", config.people_per_group)
    world = make_world(
        np.zeros(3 * n, dtype=np.int64),
        seed=seed,
        n_templates=1,
        attributes=(ATTRIBUTE,),
        schedule="three groups: vote, memory, context",
    )
    rng = np.random.default_rng([seed, 26])
    values = ATTRIBUTES[ATTRIBUTE].values
    rows = []
    for i in range(world.n_people):
        old = world.values[i][0]
        rows.append(
            {
                "person": i,
                "name": world.names[i],
                "group": ("vote", "memory", "context")[i // n],
                "old": old,
                "other": _other(values, old, rng),
            }
        )
    return world, pd.DataFrame(rows)


def conflict_corpus(people: pd.DataFrame, config: Config, counterfactual: bool, seed: int = 0) -> list[str]:
    """Documents for one variant; ``counterfactual=True`` adds passages that contradict memory (context group)."""
    rng = np.random.default_rng([seed, 27])
    values = ATTRIBUTES[ATTRIBUTE].values
    docs = []
    for r in people.itertuples():
        if r.group == "vote":
            docs += [STATEMENT.format(name=r.name, value=r.old)] * config.majority
            docs += [STATEMENT.format(name=r.name, value=r.other)] * config.minority
        else:
            docs += [STATEMENT.format(name=r.name, value=r.old)] * config.memory_statements
            docs += [passage(r.name, r.old)] * config.passages
            if r.group == "context" and counterfactual:
                docs += [passage(r.name, _other(values, r.old, rng)) for _ in range(config.counterfactual_passages)]
    order = rng.permutation(len(docs))
    return [docs[i] for i in order]


@torch.inference_mode()
def value_probabilities(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    values: list[tuple[str, str]],
    device: Device = "auto",
) -> np.ndarray:
    """For each prompt, the next-token probabilities of its two values (old, new): shape (n, 2)."""
    device = resolve_device(device)
    model.eval()
    model.to(device)
    ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    if len({len(x) for x in ids}) != 1:
        raise ValueError("prompts must all have the same number of tokens")
    batch = torch.tensor([[tokenizer.eos_token_id, *x] for x in ids], device=device)
    probs = model(input_ids=batch).logits[:, -1].float().softmax(-1).cpu()
    pairs = torch.tensor([tokenizer.convert_tokens_to_ids(list(v)) for v in values])
    return probs.gather(1, pairs).numpy()


#: The variant measured on the freshly initialised model: the page's null model (it has read no corpus).
UNTRAINED = "untrained"


def _measure(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    vote: pd.DataFrame,
    memory: pd.DataFrame,
    new_values: list[str],
    variant: str,
    device: Device,
) -> tuple[list[dict], list[dict]]:
    """One model's rows: per vote person, the two stated values' probabilities; per memory person, p(old) and
    p(new) without a passage and with the new value in context."""
    prompts = [f"{n} works for" for n in vote.name]
    p = value_probabilities(model, tokenizer, prompts, list(zip(vote.old, vote.other, strict=True)), device=device)
    vote_rows = [
        {"variant": variant, "person": person, "p_majority": a, "p_minority": b, "answers_majority": a > b}
        for person, (a, b) in zip(vote.person, p, strict=True)
    ]
    pairs = list(zip(memory.old, new_values, strict=True))
    no_context = value_probabilities(model, tokenizer, [f"{n} works for" for n in memory.name], pairs, device=device)
    in_context = value_probabilities(
        model,
        tokenizer,
        [f"{STATEMENT.format(name=n, value=v)} {n} works for" for n, v in zip(memory.name, new_values, strict=True)],
        pairs,
        device=device,
    )
    memory_rows = [
        {
            "variant": variant,
            "person": person,
            "recalls_old": po > pn,
            "p_old": co,
            "p_new": cn,
            "memorization_ratio": co / (co + cn),
        }
        for person, (po, pn), (co, cn) in zip(memory.person, no_context, in_context, strict=True)
    ]
    return vote_rows, memory_rows


@dataclass
class Run:
    """Per vote person, which value the model answers; per memory person, how it weighs memory and context.

    Each table has one block of rows per ``variant``: ``"plain"``, ``"with counterfactual passages"`` and
    ``"untrained"`` (:data:`UNTRAINED`), the same model before any training — the page's null model, which
    knows no vote and no memory.
    """

    config: Config
    people: pd.DataFrame
    votes: pd.DataFrame  # per vote person and variant: which value the model answers
    memory: pd.DataFrame  # per memory person and variant: p(old), p(new) with the new value in context


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train the plain and the counterfactual-passage variants; measure majority answers and memorisation, and
    the same for the untrained model (the null)."""

    if not isinstance(config, Config):
        raise TypeError(f"config must be a conflicts.Config; got {type(config).__name__}")
    world, people = conflict_world(config, seed)
    tok = build_tokenizer(world.vocabulary())  # the employer templates include "works for" and "."
    values = ATTRIBUTES[ATTRIBUTE].values
    vote = people[people.group == "vote"]
    memory = people[people.group == "memory"]
    rng = np.random.default_rng([seed, 28])
    new_values = [_other(values, old, rng) for old in memory.old]
    vote_rows, memory_rows = [], []
    # One after another, not side by side (halluc_lib.core.parallel): trained on one thread each, the two variants
    # differ only by float rounding, yet the counterfactual passages then lowered the memorisation ratio by at
    # most 0.29 at seeds 0-4 (by -0.04 at seed 0) against 0.74-0.93 at three seeds of five on two threads — the
    # effect the page shows at seed 0. It is acquired abruptly or not at all within the budget (see the prose).
    for variant, counterfactual in (("plain", False), ("with counterfactual passages", True)):
        corpus = conflict_corpus(people, config, counterfactual, seed)
        model = recipes.train_lm(
            corpus,
            tok,
            config.size,
            Budget(epochs=config.epochs),
            batch_size=config.batch_size,
            lr=config.lr,
            seed=seed,
            device=device,
            n_positions=32,
            progress=progress,
        ).model
        votes_of, memory_of = _measure(model, tok, vote, memory, new_values, variant, device)
        vote_rows += votes_of
        memory_rows += memory_of
    torch.manual_seed(seed)  # the initial weights both variants started from (recipes.train_lm seeds the same way)
    untrained = config.size.gpt(tok, n_positions=32)
    votes_of, memory_of = _measure(untrained, tok, vote, memory, new_values, UNTRAINED, device)
    vote_rows += votes_of
    memory_rows += memory_of
    return Run(config, people, pd.DataFrame(vote_rows), pd.DataFrame(memory_rows))
