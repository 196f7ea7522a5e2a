"""Data balancing: reweighting, resampling and group DRO (chapter 4.1; source §3.2 (1)).

All three change *how much each training example counts*, so a rare group or the examples that contradict a
shortcut are not drowned out:

* **reweighting** multiplies each example's loss by the inverse frequency of its group;
* **resampling** draws training batches with probabilities proportional to those weights (the rare group is
  seen more often, each time with weight one);
* **group DRO** (Sagawa et al., 2020) keeps a weight per group that grows exponentially with the group's loss
  and minimises the weighted sum — it optimises the worst group rather than the average.

Each is a wrapper or a batch source around an unchanged classifier, so the book's one training loop trains them.

Second half of the page, balancing facts by repetition:

Repeating chosen facts on purpose: selective upweighting on the fact world (chapter 4.1, second half).

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
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core import parallel, probe
from ..core.batching import TensorBatches, epoch_rng
from ..core.classify import concat, model_inputs
from ..core.ledger import Tradeoff
from ..core.models import DigitMLP
from ..core.recipes import CLASSIFIER_PRECISION, Budget, Trained
from ..core.runtime import Device, check_positive_int, check_probability, check_scale
from ..core.train import TrainConfig, train
from ..core.world import Probe
from ..datasets.digits import colored_digits, domain_shifted_digits
from ..datasets.statements import (
    ATTRIBUTE,
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

#: The balancing methods compared on the page, the baseline first.
METHODS = ("plain", "reweighting", "resampling", "group DRO")


def inverse_frequency_weights(groups: torch.Tensor) -> torch.Tensor:
    """Per-example weights ∝ 1 / (size of its group), scaled to mean one, so every group weighs the same."""
    groups = torch.as_tensor(groups)
    if groups.numel() == 0:
        raise ValueError("groups must not be empty")
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse].float()
    return weights * len(weights) / weights.sum()


class WeightedLoss(nn.Module):
    """Wraps a classifier: the loss is the ``weights``-weighted mean of per-example cross-entropies."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, labels=None, weights=None, groups=None, **inputs):
        logits = self.model(**inputs).logits
        loss = None
        if labels is not None:
            per_example = nn.functional.cross_entropy(logits, labels, reduction="none")
            loss = per_example.mean() if weights is None else (weights * per_example).sum() / weights.sum()
        return SimpleNamespace(loss=loss, logits=logits)


class GroupDRO(nn.Module):
    """Wraps a classifier with the online group-DRO objective of Sagawa et al. (2020).

    Group weights ``q`` start uniform; at every training step ``q_g ← q_g · exp(step_size · loss_g)`` and are
    renormalised, and the loss is ``Σ_g q_g · loss_g``.
    """

    def __init__(self, model: nn.Module, n_groups: int, step_size: float = 0.01):
        super().__init__()
        self.model = model
        self.n_groups = check_positive_int("n_groups", n_groups)
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0; got {step_size!r}")
        self.step_size = step_size
        self.register_buffer("q", torch.full((n_groups,), 1.0 / n_groups))

    def forward(self, labels=None, groups=None, weights=None, **inputs):
        logits = self.model(**inputs).logits
        loss = None
        if labels is not None:
            if groups is None:
                raise ValueError("groups must be given with labels: group DRO needs each example's group")
            per_example = nn.functional.cross_entropy(logits, labels, reduction="none")
            sums = torch.zeros(self.n_groups, device=logits.device).index_add(0, groups, per_example)
            counts = torch.zeros(self.n_groups, device=logits.device).index_add(0, groups, torch.ones_like(per_example))
            group_loss = sums / counts.clamp(min=1)
            if self.training:
                with torch.no_grad():
                    present = counts > 0
                    self.q[present] *= torch.exp(self.step_size * group_loss[present])
                    self.q /= self.q.sum()
            loss = (self.q * group_loss).sum()
        return SimpleNamespace(loss=loss, logits=logits)


class ResampledBatches(TensorBatches):
    """Like :class:`~halluc_lib.core.batching.TensorBatches`, but every epoch draws its examples with replacement,
    with probability proportional to ``sampling_weights``."""

    def __init__(self, tensors, *, sampling_weights: torch.Tensor, batch_size: int, seed: int = 0):
        super().__init__(tensors, batch_size=batch_size, seed=seed)
        w = torch.as_tensor(sampling_weights, dtype=torch.float64)
        if w.shape != (self.n,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sampling_weights must hold one non-negative weight per example, not all zero")
        self.p = (w / w.sum()).numpy()

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """``n`` examples drawn with replacement, with probability proportional to their weights."""
        return epoch_rng(self.seed, epoch).choice(self.n, size=self.n, p=self.p)


def train_balanced(
    build_model,
    train_data: dict[str, torch.Tensor],
    method: str,
    *,
    n_groups: int,
    steps: int,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
    dro_step_size: float = 0.01,
    device: Device = "auto",
) -> Trained:
    """Train ``build_model()`` on ``train_data`` (which must hold ``labels`` and ``groups``) with one method;
    returns the model (in eval mode, on the CPU) and its :class:`~halluc_lib.core.train.TrainResult`."""

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    torch.manual_seed(seed)
    inner = build_model()
    weights = inverse_frequency_weights(train_data["groups"])
    data = dict(train_data)
    if method == "reweighting":
        data["weights"] = weights
    if method == "group DRO":
        model = GroupDRO(inner, n_groups, dro_step_size)
    else:
        model = WeightedLoss(inner)
    if method == "resampling":
        batches = ResampledBatches(data, sampling_weights=weights, batch_size=batch_size, seed=seed)
    else:
        batches = TensorBatches(data, batch_size=batch_size, seed=seed)
    config = TrainConfig(steps=steps, lr=lr, weight_decay=0.0, seed=seed, precision=CLASSIFIER_PRECISION)
    result = train(model, batches, config, device=device, progress=False)
    return Trained(inner.to("cpu").eval(), result)


@torch.inference_mode()
def group_accuracy(model: nn.Module, data: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Accuracy per group of one evaluation split, plus its size."""
    correct = (model(**model_inputs(data)).logits.argmax(-1) == data["labels"]).numpy()
    groups = data["groups"].numpy()
    return pd.DataFrame(
        [
            {"group": int(g), "n": int((groups == g).sum()), "accuracy": float(correct[groups == g].mean())}
            for g in np.unique(groups)
        ]
    )


def color_groups(split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Colored digits with ``groups`` = 2·label + colour: the two groups where colour contradicts the label
    are the rare ones in training."""
    color = split["pixels"].sum((2, 3)).argmax(1)
    return {"pixels": split["pixels"], "labels": split["labels"], "groups": 2 * split["labels"] + color}


def domain_groups(split: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Domain-shifted digits with ``groups`` = 2·domain + label (domain 1 is the rare one)."""
    return {"pixels": split["pixels"], "labels": split["labels"], "groups": 2 * split["domains"] + split["labels"]}


def compare_methods(
    *, steps: int = 600, seed: int = 0, minority_share: float = 0.01, device: Device = "auto"
) -> pd.DataFrame:
    """Every method on both chapter-2 datasets; one row per dataset, method and test group, with the
    training seconds of each model (its :class:`~halluc_lib.core.train.TrainResult`)."""

    colored = colored_digits(seed=seed)
    shifted = domain_shifted_digits(minority_share, seed=seed)
    datasets = {
        "colored digits (2.3)": (
            color_groups(concat([colored["train 1"], colored["train 2"]])),
            color_groups(colored["test"]),
        ),
        "rare domain (2.4)": (
            domain_groups(shifted["train"]),
            domain_groups(concat([shifted["test majority"], shifted["test minority"]])),
        ),
    }
    # A few untimed steps first, so one-time start-up costs do not land on whichever method is timed first.
    warm_up = datasets["colored digits (2.3)"][0]
    train_balanced(DigitMLP, warm_up, "plain", n_groups=4, steps=5, seed=seed, device=device)
    rows = []
    for name, (train_data, test_data) in datasets.items():
        for method in METHODS:
            trained = train_balanced(DigitMLP, train_data, method, n_groups=4, steps=steps, seed=seed, device=device)
            seconds = trained.result.seconds
            table = group_accuracy(trained.model, test_data)
            overall = float((table.accuracy * table.n).sum() / table.n.sum())
            for r in table.itertuples():
                rows.append(
                    {
                        "dataset": name,
                        "method": method,
                        "group": r.group,
                        "n": r.n,
                        "accuracy": r.accuracy,
                        "average": overall,
                        "train_seconds": seconds,
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Second half of the page, balancing facts by repetition

STRATEGIES = ("none", "random", "rare")


@dataclass(frozen=True)
class UpweightingConfig:
    """Which share of the statements is repeated, how many extra times, and how long every model trains."""

    share: float = 0.05
    repeats: int = 10
    # at 10 epochs random upweighting no longer cost distinct true statements at seeds 1-3 (sweep): the repeats
    # crowd out the rest only once the model has fitted the corpus
    epochs: int = 15

    def __post_init__(self):
        check_probability("share", self.share, open_low=True)
        check_positive_int("repeats", self.repeats)
        check_positive_int("epochs", self.epochs)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> UpweightingConfig:
        """5% of the statements repeated 10 more times, 15 epochs, at both scales."""
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
    """Per strategy, what its model's generations are like, and its recall of the rare repeated facts."""

    config: UpweightingConfig
    summary: pd.DataFrame  # one row per strategy
    recall: pd.DataFrame  # per strategy: recall of the statements the "rare" strategy repeated


def compare_upweighting(
    config: UpweightingConfig,
    statements: StatementsConfig,
    *,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = True,
) -> UpweightingRun:
    """Train one model per strategy on the same statements for the same number of steps (side by side,
    :mod:`halluc_lib.core.parallel`; a worker draws no progress bar); judge each."""

    if not isinstance(config, UpweightingConfig):
        raise TypeError(f"config must be an UpweightingConfig; got {type(config).__name__}")
    if not isinstance(statements, StatementsConfig):
        raise TypeError(f"statements must be a StatementsConfig; got {type(statements).__name__}")
    population = make_population(statements.n_people, statements.exponent, seed=seed)
    rng = np.random.default_rng([seed, 21])
    train_people = population.draw(statements.n_statements, rng)
    heldout_people = population.draw(statements.heldout_statements, rng)
    _, rare_chosen = upweighted_corpus(train_people, "rare", config.share, config.repeats, seed)
    rare_people = train_people[rare_chosen]
    # passes over the statements as they are, so every strategy trains for the same number of steps
    steps = Budget(epochs=config.epochs).steps_for(-(-len(train_people) // statements.batch_size))
    tok = statement_tokenizer(population)
    corpora = {s: upweighted_corpus(train_people, s, config.share, config.repeats, seed) for s in STRATEGIES}
    # the strategies' models train independently: side by side
    fitted = parallel.side_by_side(
        [
            partial(
                train_statement_model,
                [population.statement(int(p)) for p in people],
                tok,
                statements,
                steps,
                seed=seed,
                device=device,
                progress=progress,
            )
            for people, _ in corpora.values()
        ],
        device=device,
    )
    rows, recall = [], []
    for (strategy, (people, chosen)), trained in zip(corpora.items(), fitted, strict=True):
        model, result = trained.model, trained.result
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


# ---------------------------------------------------------------------------------------------------------
# The page's experiment


@dataclass(frozen=True)
class Config:
    """Both halves of the page: the balancing methods on the chapter-2 datasets, and upweighting on facts."""

    steps: int = 600  # per digit model
    minority_share: float = 0.01  # of the rare domain (chapter 2.4)
    upweighting: UpweightingConfig = UpweightingConfig()
    statements: StatementsConfig = StatementsConfig()

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_probability("minority_share", self.minority_share, open_low=True)
        if not isinstance(self.upweighting, UpweightingConfig):
            raise TypeError(f"upweighting must be an UpweightingConfig; got {type(self.upweighting).__name__}")
        if not isinstance(self.statements, StatementsConfig):
            raise TypeError(f"statements must be a StatementsConfig; got {type(self.statements).__name__}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 600 steps per digit model and the quick statement world; full: 3,000 and the full world."""
        quick = check_scale(scale) == "quick"
        return cls(
            steps=600 if quick else 3000,
            upweighting=UpweightingConfig.for_scale(scale),
            statements=StatementsConfig.for_scale(scale),
        )


@dataclass
class Run:
    """Per dataset, method and test group the accuracy (``methods``); per upweighting strategy the
    generations' summary and the recall of rare facts."""

    methods: pd.DataFrame
    upweighting: pd.DataFrame
    recall: pd.DataFrame


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train every balancing method on both datasets, then one statement model per upweighting strategy."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a balancing.Config; got {type(config).__name__}")
    methods = compare_methods(steps=config.steps, seed=seed, minority_share=config.minority_share, device=device)
    facts = compare_upweighting(config.upweighting, config.statements, seed=seed, device=device, progress=progress)
    return Run(methods, facts.summary, facts.recall)


def method_table(methods: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per (dataset, method) and test group, with the worst group's and the average accuracy."""
    table = methods.pivot_table(index=["dataset", "method"], columns="group", values="accuracy")
    table["worst group"] = table.min(axis=1)
    table["average"] = methods.groupby(["dataset", "method"]).average.first()
    return table


def strategy_table(run: Run) -> pd.DataFrame:
    """One row per upweighting strategy, with the recall of the rare repeated facts."""
    summary = run.upweighting.set_index("strategy")
    summary["rare-fact recall"] = run.recall.groupby("strategy").correct.mean()
    return summary


def tradeoffs(run: Run) -> list[Tradeoff]:
    """The page's two entries in the trade-off ledger: group DRO on coloured digits, random upweighting on facts."""
    colored = method_table(run.methods).loc["colored digits (2.3)"]
    seconds = run.methods.groupby(["dataset", "method"]).train_seconds.first().loc["colored digits (2.3)"]
    facts = strategy_table(run)
    plain, upweighted = facts.loc["none"], facts.loc["random"]
    return [
        Tradeoff(
            mitigation="group DRO",
            page="ch04_1_balancing",
            task="coloured digits, colour reversed at test",
            error_name="worst-group error",
            error=(1 - colored.loc["plain", "worst group"], 1 - colored.loc["group DRO", "worst group"]),
            accuracy=(colored.loc["plain", "average"], colored.loc["group DRO", "average"]),
            compute_ratio=seconds["group DRO"] / seconds["plain"],
            compute_unit="training wall time",
            needs="a group label on every training example",
        ),
        Tradeoff(
            mitigation="selective upweighting",
            page="ch04_1_balancing",
            task="free generation of statements about people (chapter 2.2)",
            error_name="hallucination rate",
            error=(plain.hallucination_rate, upweighted.hallucination_rate),
            accuracy=(
                1 - plain.hallucination_rate - plain.malformed_rate,
                1 - upweighted.hallucination_rate - upweighted.malformed_rate,
            ),
            compute_ratio=upweighted.train_seconds / plain.train_seconds,
            compute_unit="training wall time (same steps)",
            needs="a choice of which statements to repeat; costs coverage",
        ),
    ]
