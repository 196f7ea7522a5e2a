"""Prior knowledge: a knowledge base, constrained decoding and retrieval augmentation (chapter 4.3).

The world's ground truth is a knowledge base (KB) — one row per (person, attribute). We use it three ways:

* **constrained decoding**: the answer is chosen among the attribute's valid values only, so the model can
  never name something that is not a city when asked for a city. This fixes the *form* of an answer, not its
  truth.
* **retrieval augmentation** (RAG): the KB's sentence for the asked fact is put in front of the question.
  A model answers from its context only if it has learned to read; we fine-tune a copy of the pretrained
  model on *reading* documents — a passage about a stranger (someone not in the world, with random values)
  followed by the same fact restated — with the loss on the restatement only. Because strangers' facts are
  random, copying from the passage is the only way to predict them.
* **adaptive retrieval** (Mallen et al., 2023): retrieve only when the model is unsure of its own answer,
  and otherwise answer from memory — most of the accuracy of always retrieving, at a fraction of the cost.

Training on the passages themselves, instead of only on the restatement, teaches the model that a first
mention of a person's fact is unpredictable, and erases much of what it had memorised (an exercise shows it):
the fine-tuning effect of Gekhman et al. (2024) in another form.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import parallel
from ..core.batching import LMBatches
from ..core.cache import train_cached
from ..core.ledger import Tradeoff
from ..core.metrics import expected_calibration_error
from ..core.probe import answer_probes, names_a_value
from ..core.runtime import Device, check_positive_int, check_probability
from ..core.train import TrainConfig
from ..core.world import ATTRIBUTES, Probe, World, make_probes, make_world
from ..datasets.biographies import BiographyConfig, BiographyModel, biography_model


def fact_sentence(name: str, attribute: str, value: str) -> str:
    """The KB's sentence for one fact, in the attribute's first template (the phrasing questions use)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"attribute must be one of {tuple(ATTRIBUTES)}; got {attribute!r}")
    return ATTRIBUTES[attribute].templates[0].format(name=name, value=value) + " ."


def knowledge_base(world: World) -> dict[tuple[str, str], str]:
    """The world's facts keyed by (name, attribute): what a perfect retriever can look up."""
    return {
        (name, attribute): world.values[i][j]
        for i, name in enumerate(world.names)
        for j, attribute in enumerate(world.attributes)
    }


def open_book(probes: Sequence[Probe], world: World, kb: dict[tuple[str, str], str] | None = None) -> list[Probe]:
    """The same questions with the retrieved KB sentence in front of each prompt.

    ``kb`` defaults to the true knowledge base; pass a corrupted one to see what wrong retrievals do.
    """
    kb = knowledge_base(world) if kb is None else kb
    opened = []
    for p in probes:
        name = world.names[p.person]
        passage = fact_sentence(name, p.attribute, kb[(name, p.attribute)])
        opened.append(replace(p, prompt=f"{passage} {p.prompt}"))
    return opened


def strangers(world: World, n: int, seed: int = 0) -> World:
    """``n`` people who are not in ``world`` (no shared name), with random values and no exposures."""
    n = check_positive_int("n", n)
    pool = make_world(np.zeros(n + world.n_people, dtype=int), seed=seed + 10_000, attributes=world.attributes)
    taken = set(world.names)
    keep = [i for i, name in enumerate(pool.names) if name not in taken][:n]
    return replace(
        pool,
        names=tuple(pool.names[i] for i in keep),
        values=tuple(pool.values[i] for i in keep),
        exposures=tuple(0 for _ in keep),
        schedule=f"{n} strangers of a world",
    )


def reading_documents(readers_world: World, seed: int = 0) -> tuple[list[str], list[str]]:
    """One (context, target) pair per stranger: a random fact's KB sentence, then the same fact restated."""
    rng = np.random.default_rng([seed, 43])
    contexts, targets = [], []
    for i, name in enumerate(readers_world.names):
        j = int(rng.integers(len(readers_world.attributes)))
        sentence = fact_sentence(name, readers_world.attributes[j], readers_world.values[i][j])
        contexts.append(sentence)
        targets.append(sentence)
    return contexts, targets


def invalid_rate(answers: pd.DataFrame) -> float:
    """Share of answers whose unconstrained next token is not a value of the asked attribute."""
    return float(1 - names_a_value(answers).mean())


def mean_prompt_tokens(probes: Sequence[Probe], tokenizer: PreTrainedTokenizerBase) -> float:
    """Mean number of tokens the model reads per question: the cost of putting passages in the context."""
    return float(
        np.mean([len(ids) for ids in tokenizer([p.prompt for p in probes], add_special_tokens=False)["input_ids"]])
    )


def combine(closed: pd.DataFrame, opened: pd.DataFrame, retrieve: np.ndarray) -> pd.DataFrame:
    """Per question, the open-book answer where ``retrieve`` is true and the closed-book answer elsewhere."""
    retrieve = np.asarray(retrieve, dtype=bool)
    if not len(closed) == len(opened) == len(retrieve):
        raise ValueError(
            f"closed, opened and retrieve must be equally long; got {len(closed)}, {len(opened)}, {len(retrieve)}"
        )
    out = pd.concat([closed[~retrieve], opened[retrieve]]).loc[closed.index]
    return out.assign(retrieved=retrieve)


def retrieval_curve(closed: pd.DataFrame, opened: pd.DataFrame, budgets: Sequence[float]) -> pd.DataFrame:
    """Adaptive retrieval at several budgets: retrieve for the ``budget`` share of questions the closed-book
    model is least confident about. One row per budget: ``threshold, retrieval_rate, accuracy``."""
    confidence = closed["confidence"].to_numpy()
    rows = []
    for budget in budgets:
        threshold = confidence_threshold(confidence, budget)
        chosen = combine(closed, opened, confidence < threshold)
        rows.append(
            {
                "budget": budget,
                "threshold": threshold,
                "retrieval_rate": float(chosen["retrieved"].mean()),
                "accuracy": float(chosen["correct"].mean()),
            }
        )
    return pd.DataFrame(rows)


def confidence_threshold(confidence: np.ndarray, budget: float) -> float:
    """The confidence below which at most ``budget`` of the questions fall: chosen from confidences alone,
    without labels, so it can be set before any answer is checked."""
    budget = check_probability("budget", budget)
    confidence = np.sort(np.asarray(confidence, dtype=float))
    if budget == 0:
        return float(confidence[0])
    if budget == 1:
        return float(np.nextafter(confidence[-1], np.inf))
    k = int(np.floor(budget * len(confidence)))
    return float(confidence[k])


@dataclass
class RetrievalRun:
    """Closed-book answers of the pretrained model, open-book answers of the reader, and the reader; also the
    reader trained with the loss on the passage too (the page's exercise)."""

    closed: pd.DataFrame
    opened: pd.DataFrame
    reader: torch.nn.Module
    reader_closed: pd.DataFrame  # the reader asked without a passage: what reading fine-tuning cost
    careless_reader: torch.nn.Module  # trained with train_on_context=True


def train_reader(
    base_run,
    *,
    steps: int = 300,
    n_strangers: int = 4000,
    train_on_context: bool = False,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = True,
) -> torch.nn.Module:
    """Fine-tune a copy of ``base_run.model`` on reading documents about strangers, mixed 1:1 with the
    pretraining corpus so that it keeps what it memorised. The loss skips the passage unless
    ``train_on_context`` (the mistake the module docstring describes). Cached like every trained model."""

    steps = check_positive_int("steps", steps)
    readers_world = strangers(base_run.world, n_strangers, seed=seed)
    contexts, targets = reading_documents(readers_world, seed=seed)
    rng = np.random.default_rng([seed, 44])
    corpus = [base_run.corpus[i] for i in rng.choice(len(base_run.corpus), size=len(targets))]
    if train_on_context:
        contexts, targets = [""] * len(targets), [f"{c} {t}" for c, t in zip(contexts, targets, strict=True)]
    batches = LMBatches.from_contexts_and_targets(
        contexts + [""] * len(corpus), targets + corpus, base_run.tokenizer, batch_size=64, seed=seed
    )
    config = TrainConfig(steps=steps, lr=1e-3, warmup_fraction=0.0, seed=seed)
    key = {
        "experiment": "reader",
        "world": base_run.world.checksum(),
        "base": asdict(base_run.config),
        "strangers": readers_world.checksum(),
        "train_on_context": train_on_context,
        "seed": seed,
    }
    reader, _, _ = train_cached(
        lambda: copy.deepcopy(base_run.model), batches, config, key=key, device=device, progress=progress
    )
    return reader


def ask_closed_and_open(
    base_run: BiographyModel,
    *,
    steps: int = 300,
    n_strangers: int = 4000,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = True,
) -> RetrievalRun:
    """Ask every question of ``base_run`` closed-book with the pretrained model and open-book with the reader.

    The reader and the careless one (loss on the passage too) are independent, so they train side by side
    (:mod:`halluc_lib.core.parallel`; a worker draws no progress bar).
    """

    train = partial(
        train_reader, base_run, steps=steps, n_strangers=n_strangers, seed=seed, device=device, progress=progress
    )
    reader, careless = parallel.side_by_side([train, partial(train, train_on_context=True)], device=device)
    probes = make_probes(base_run.world)
    tok = base_run.tokenizer
    closed = answer_probes(base_run.model, tok, probes, device=device)
    opened = answer_probes(reader, tok, open_book(probes, base_run.world), device=device)
    reader_closed = answer_probes(reader, tok, probes, device=device)
    return RetrievalRun(closed, opened, reader, reader_closed, careless)


@dataclass(frozen=True)
class Config:
    """The base model (the memorize regime of chapter 2.1), the reader's training, and the retrieval budgets."""

    biographies: BiographyConfig = BiographyConfig.for_scale("quick", "memorize")
    reader_steps: int = 300
    n_strangers: int = 4000
    budgets: tuple[float, ...] = tuple(round(b, 2) for b in np.linspace(0, 1, 11))
    budget: float = 0.6  # the adaptive-retrieval budget the page reports

    def __post_init__(self):
        check_positive_int("reader_steps", self.reader_steps)
        check_positive_int("n_strangers", self.n_strangers)
        if self.budget not in self.budgets:
            raise ValueError(f"budget must be one of budgets {self.budgets}; got {self.budget!r}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The memorize-regime world at ``scale``; the same reader training at both scales."""
        return cls(BiographyConfig.for_scale(scale, "memorize"))


@dataclass
class Run:
    """The base model, closed- and open-book answers, and accuracy against the share retrieved for."""

    config: Config
    base: BiographyModel
    answers: RetrievalRun
    curve: pd.DataFrame  # per budget: retrieval rate, threshold and accuracy of adaptive retrieval


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load) the base model and the readers (the page's, and side by side the exercise's careless one),
    answer closed- and open-book, and trace adaptive retrieval over every budget."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a prior_knowledge.Config; got {type(config).__name__}")
    base = biography_model(config.biographies, seed=seed, device=device, progress=progress)
    answers = ask_closed_and_open(
        base, steps=config.reader_steps, n_strangers=config.n_strangers, seed=seed, device=device, progress=progress
    )
    curve = retrieval_curve(answers.closed, answers.opened, budgets=config.budgets)
    return Run(config, base, answers, curve)


def tradeoffs(run: Run) -> list[Tradeoff]:
    """The page's entry in the trade-off ledger: adaptive retrieval at ``config.budget`` against closed book."""
    closed, opened = run.answers.closed, run.answers.opened
    chosen = run.curve.set_index("budget").loc[run.config.budget]
    questions = make_probes(run.base.world)
    closed_tokens = mean_prompt_tokens(questions, run.base.tokenizer)
    open_tokens = mean_prompt_tokens(open_book(questions, run.base.world), run.base.tokenizer)
    adaptive = combine(closed, opened, closed.confidence.to_numpy() < chosen.threshold)
    return [
        Tradeoff(
            mitigation="adaptive retrieval",
            page="ch04_3_prior_knowledge",
            task="fact questions, memorize-regime world",
            error_name="wrong answers",
            error=(1 - closed.correct.mean(), 1 - adaptive.correct.mean()),
            accuracy=(closed.correct.mean(), adaptive.correct.mean()),
            ece=(
                expected_calibration_error(closed.confidence.to_numpy(), closed.correct.to_numpy()),
                expected_calibration_error(adaptive.confidence.to_numpy(), adaptive.correct.to_numpy()),
            ),
            compute_ratio=1 + chosen.retrieval_rate * (open_tokens - closed_tokens) / closed_tokens,
            compute_unit="tokens read per question",
            needs="a knowledge base, a retriever, a reader fine-tuned to use passages",
        )
    ]
