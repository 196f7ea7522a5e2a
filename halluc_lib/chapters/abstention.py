"""Abstention and evaluation incentives (chapter 4.6).

Kalai et al. (2025) argue that hallucinations persist because evaluations reward guessing: under right/wrong
grading an "I don't know" scores the same as a wrong answer, so a model that always guesses scores at least as
well as one that abstains. With a *confidence target* t — right +1, wrong −t/(1−t), abstain 0 — answering
pays only when the model's chance of being right exceeds t, and abstaining on what it does not know wins.

The experiment fine-tunes the chapter 2.1 model on statements about half of its people. The *guessing*
variant is fine-tuned on their true values only; the *abstaining* variant is fine-tuned with the answer
``<idk>`` for people seen at most ``idk_max_exposures`` times in pretraining. Both are evaluated on the other
half of the people, whom fine-tuning never mentioned.

Second half of the page, unknown facts in fine-tuning:

Fine-tuning on facts the model does not know (chapter 4.6, second half).

Gekhman et al. (2024) fine-tuned a pretrained model to answer closed-book questions and sorted the fine-tuning
examples by whether the model already knew the answer. Examples it did not know (*unknown*) were fitted much
later than known ones, and the more of them the fine-tuning set held, the worse the fine-tuned model answered
held-out questions once they were fitted: fine-tuning on new facts teaches the model to answer past what it
knows. Stopping early — before the unknown examples are fitted — avoided most of the damage.

Here the pretrained model is the chapter 2.1 model. Question answering is a new format for it: its tokenizer
is extended with the question words (:func:`halluc_lib.core.tokenizer.extend_tokenizer`) and the embeddings resized.
A fact is *known* when the pretrained model completes its biography sentence correctly. Fine-tuning sets
share the same known facts and differ only in the unknown facts added to them; every model is evaluated
during fine-tuning on its own examples (known and unknown apart), on a development set and on a test set of
people fine-tuning never mentioned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import batching, probe
from ..core.ledger import Tradeoff
from ..core.metrics import outcome_rates
from ..core.probe import names_a_value
from ..core.recipes import Budget
from ..core.runtime import (
    Device,
    autocast_dtype,
    check_positive_int,
    check_probability,
    check_scale,
    model_device,
)
from ..core.tokenizer import IDK_TOKEN, extend_tokenizer
from ..core.train import TrainConfig, train
from ..core.world import ATTRIBUTES, make_probes
from ..datasets.biographies import BiographyConfig, BiographyModel, biography_model
from ..datasets.qa import qa_probes, qa_vocabulary


def confidence_target_score(outcomes: pd.DataFrame, t: float) -> float:
    """Mean score with confidence target ``t``: +1 right, −t/(1−t) wrong, 0 abstained. ``t = 0`` is
    right/wrong grading (a wrong answer costs nothing more than an abstention)."""
    t = check_probability("t", t, open_high=True)
    abstained = outcomes["abstained"].to_numpy(bool)
    correct = outcomes["correct"].to_numpy(bool) & ~abstained
    wrong = ~correct & ~abstained
    return float((correct.sum() - wrong.sum() * t / (1 - t)) / len(outcomes))


def finetune_documents(world, people, idk_max_exposures: int | None) -> list[str]:
    """One statement per (person, attribute) in the first phrasing; the value is ``<idk>`` for people seen at
    most ``idk_max_exposures`` times (``None``: never)."""
    docs = []
    for p in make_probes(world, people=people):
        unknown = idk_max_exposures is not None and p.exposures <= idk_max_exposures
        docs.append(f"{p.prompt} {IDK_TOKEN if unknown else p.answer} .")
    return docs


@dataclass
class AbstentionRun:
    """Per variant, its answers to held-out questions, its score at every confidence target, its cost."""

    answers: pd.DataFrame  # per variant and held-out probe: the model's choice among values and <idk>
    scores: pd.DataFrame  # per variant and confidence target t
    train_seconds: dict  # per variant: wall time of its fine-tuning
    models: dict  # per variant: the fine-tuned model


def judge_with_idk(logits: torch.Tensor, probes, tokenizer: PreTrainedTokenizerBase) -> pd.DataFrame:
    """The model's answer among the attribute's values *and* ``<idk>``: greedy over those tokens."""

    idk = tokenizer.convert_tokens_to_ids(IDK_TOKEN)
    rows = []
    for i, p in enumerate(probes):
        values = ATTRIBUTES[p.attribute].values
        ids = tokenizer.convert_tokens_to_ids(list(values)) + [idk]
        probs = logits[i, ids].softmax(-1)
        pick = int(probs.argmax())
        abstained = pick == len(values)
        rows.append(
            {
                "person": p.person,
                "attribute": p.attribute,
                "exposures": p.exposures,
                "abstained": abstained,
                "correct": (not abstained) and values[pick] == p.answer,
                "p_idk": float(probs[-1]),
            }
        )
    return pd.DataFrame(rows)


def compare_abstention(
    base_run: BiographyModel,
    *,
    steps: int = 100,
    idk_max_exposures: int = 2,
    seed: int = 0,
    targets=(0.0, 0.5, 0.75, 0.9),
    device: Device = "auto",
    progress: bool = True,
) -> AbstentionRun:
    """Fine-tune two copies of the base model, one to guess and one to say ``<idk>``, and compare them."""

    world, tok = base_run.world, base_run.tokenizer
    rng = np.random.default_rng([seed, 46])
    people = rng.permutation(world.n_people)
    tune_people, eval_people = sorted(people[: len(people) // 2]), sorted(people[len(people) // 2 :])
    eval_probes = make_probes(world, people=eval_people)
    answers, scores, seconds, tuned = [], [], {}, {}
    for variant, idk in (("guessing", None), ("abstaining", idk_max_exposures)):
        docs = finetune_documents(world, tune_people, idk)
        batches = batching.LMBatches.from_texts(docs, tok, batch_size=64, seed=seed)
        model = copy.deepcopy(base_run.model)
        result = train(
            model,
            batches,
            TrainConfig(steps=steps, lr=1e-3, warmup_fraction=0.0, seed=seed),
            device=device,
            progress=progress,
        )
        seconds[variant], tuned[variant] = result.seconds, model
        logits = probe.next_token_logits(model, tok, eval_probes, device=device)
        judged = judge_with_idk(logits, eval_probes, tok).assign(variant=variant)
        answers.append(judged)
        for t in targets:
            scores.append({"variant": variant, "t": t, "score": confidence_target_score(judged, t)})
    return AbstentionRun(pd.concat(answers, ignore_index=True), pd.DataFrame(scores), seconds, tuned)


# ---------------------------------------------------------------------------------------------------------
# Second half of the page, unknown facts in fine-tuning


@dataclass(frozen=True)
class UnknownExamplesConfig:
    """Fine-tuning sets: the same ``n_known`` known facts, plus unknown ones up to each share; how they train."""

    n_known: int = 300
    unknown_shares: tuple[float, ...] = (0.0, 0.5)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    evaluations: int = 15

    def __post_init__(self):
        for name in ("n_known", "epochs", "batch_size", "evaluations"):
            check_positive_int(name, getattr(self, name))
        if not self.unknown_shares:
            raise ValueError("unknown_shares must name at least one share of unknown examples")
        for share in self.unknown_shares:
            check_probability("unknown_shares", share, open_high=True)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> UnknownExamplesConfig:
        """Quick: 300 known facts, with 0% or 50% unknown ones; full: 1,200 known facts and four shares."""
        check_scale(scale)
        if scale == "quick":
            return cls()
        return cls(n_known=1200, unknown_shares=(0.0, 0.25, 0.5, 0.75), batch_size=64)


@dataclass
class UnknownExamplesRun:
    """What the pretrained model knew, and the accuracy curves of fine-tuning with each share of unknowns."""

    config: UnknownExamplesConfig
    knowledge: pd.DataFrame  # per (person, attribute): known to the pretrained model?
    curves: pd.DataFrame  # per share, step, split and known: accuracy


def knowledge_of(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, world, *, device: Device = "auto"
) -> pd.DataFrame:
    """Which facts the pretrained model knows: its greedy completion of the first biography phrasing is right."""
    answers = answers_of(model, tokenizer, make_probes(world), device)
    return answers[["person", "attribute", "exposures", "correct"]].rename(columns={"correct": "known"})


def answers_of(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, probes, device: Device) -> pd.DataFrame:
    """The model's answers to ``probes`` on ``device``, one row per probe (as ``probe.answer_probes``)."""
    return probe.answer_probes(model, tokenizer, probes, device=device)


def split_people(n_people: int, seed: int) -> dict[str, np.ndarray]:
    """Half of the people for fine-tuning; the others split evenly between development and test."""
    people = np.random.default_rng([seed, 47]).permutation(check_positive_int("n_people", n_people))
    half, dev = n_people // 2, n_people // 2 + (n_people - n_people // 2) // 2
    return {"fine-tuning": np.sort(people[:half]), "dev": np.sort(people[half:dev]), "test": np.sort(people[dev:])}


def fine_tuning_sets(world, knowledge: pd.DataFrame, people, config: UnknownExamplesConfig, seed: int) -> dict:
    """For each unknown share, questions about ``people``: the same ``n_known`` known facts in every set, plus
    as many unknown facts as make up that share (the unknown facts of a smaller share are a prefix of a larger's).

    Keeping the known examples fixed isolates what the unknown ones do; Gekhman et al. kept the set size fixed
    instead, which at this scale would also halve the known examples that teach the format.
    """
    known = knowledge.set_index(["person", "attribute"]).known
    probes = qa_probes(world, people)
    flags = np.array([known[(p.person, p.attribute)] for p in probes])
    rng = np.random.default_rng([seed, 48])
    known_order = rng.permutation(np.flatnonzero(flags))
    unknown_order = rng.permutation(np.flatnonzero(~flags))
    sets = {}
    for share in config.unknown_shares:
        n_unknown = round(config.n_known * share / (1 - share))
        if config.n_known > len(known_order) or n_unknown > len(unknown_order):
            raise ValueError(
                f"n_known={config.n_known} at unknown share {share} needs {config.n_known} known and {n_unknown} "
                f"unknown facts; the fine-tuning people have {len(known_order)} and {len(unknown_order)}"
            )
        chosen = [*known_order[: config.n_known], *unknown_order[:n_unknown]]
        sets[share] = [(probes[i], bool(flags[i])) for i in chosen]
    return sets


def fine_tune_with_unknowns(
    base_run: BiographyModel,
    config: UnknownExamplesConfig,
    *,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = True,
) -> UnknownExamplesRun:
    """Fine-tune a copy of the base model on each fine-tuning set, evaluating as it goes."""

    if not isinstance(config, UnknownExamplesConfig):
        raise TypeError(f"config must be an UnknownExamplesConfig; got {type(config).__name__}")
    world = base_run.world
    knowledge = knowledge_of(base_run.model, base_run.tokenizer, world, device=device)
    known = knowledge.set_index(["person", "attribute"]).known
    tok = extend_tokenizer(base_run.tokenizer, qa_vocabulary())
    groups = split_people(world.n_people, seed)
    heldout = {}  # split -> (probes, whether the pretrained model knows each), computed once for every set
    for split in ("dev", "test"):
        split_probes = qa_probes(world, groups[split])
        heldout[split] = (split_probes, [known[(p.person, p.attribute)] for p in split_probes])
    # One after another, not side by side (halluc_lib.core.parallel): on one thread each, the evaluations inside
    # training (most of this function's time) lose more to the missing second thread than the side-by-side
    # fine-tuning gains, and at seed 2 the known examples were fitted as soon as the format was learned, so the
    # page's ratio of epochs to fit unknown / known divided by zero
    curves = []
    for share, examples in fine_tuning_sets(world, knowledge, groups["fine-tuning"], config, seed).items():
        splits = {"fine-tuning": ([p for p, _ in examples], [k for _, k in examples]), **heldout}

        def evaluate(model: torch.nn.Module, step, splits=splits):
            # in the precision fine-tuning trains in (bf16 where the hardware has it): 15 evaluations of ~2,700
            # questions cost more than the fine-tuning itself in fp32, and bf16 halves that (greedy answers
            # agreed with fp32's on 99.5% of the development questions)
            where = model_device(model)
            amp = autocast_dtype(where)
            rows = []
            for split, (split_probes, flags) in splits.items():
                with torch.autocast(where.type, dtype=amp, enabled=amp is not None):
                    answers = answers_of(model, tok, split_probes, where)
                answers["known"] = flags
                answers["names_a_value"] = names_a_value(answers)
                for is_known, group in answers.groupby("known"):
                    rows.append(
                        {
                            "split": split,
                            "known": bool(is_known),
                            "accuracy": group.correct.mean(),
                            "names_a_value": group.names_a_value.mean(),
                            "n": len(group),
                        }
                    )
            return rows

        model = copy.deepcopy(base_run.model)
        model.resize_token_embeddings(len(tok))
        docs = [f"{p.prompt} {p.answer} ." for p, _ in examples]
        batches = batching.LMBatches.from_texts(docs, tok, batch_size=config.batch_size, seed=seed)
        per_epoch = batches.batches_per_epoch()
        steps = Budget(epochs=config.epochs).steps_for(per_epoch)  # every known example equally often in every set
        every = max(1, steps // config.evaluations)
        train_config = TrainConfig(steps=steps, lr=config.lr, warmup_fraction=0.0, eval_every=every, seed=seed)
        result = train(model, batches, train_config, device=device, eval_fn=evaluate, progress=progress)
        curves.append(result.evals.assign(unknown_share=share, epoch=result.evals.step / per_epoch))
    return UnknownExamplesRun(config, knowledge, pd.concat(curves, ignore_index=True))


def accuracy(curves: pd.DataFrame, split: str, known: bool | None = None, column: str = "accuracy") -> pd.DataFrame:
    """Accuracy (or another per-answer rate, ``column``) per unknown share (columns) and epoch (rows) on
    ``split``; ``known=None`` pools known and unknown facts. An epoch is one pass over the fine-tuning set."""
    rows = curves[curves.split == split]
    if known is not None:
        rows = rows[rows.known == known]
    pooled = rows.assign(hits=rows[column] * rows.n).groupby(["epoch", "unknown_share"])[["hits", "n"]].sum()
    return (pooled.hits / pooled.n).unstack("unknown_share")


def _first_epoch(series: pd.Series, level: float) -> float:
    series = series.dropna()
    reached = series.index[series.to_numpy() >= level]
    return float(reached[0]) if len(reached) else float("nan")


def format_epoch(curves: pd.DataFrame, share: float, level: float = 0.9) -> float:
    """First evaluated epoch at which ``level`` of the fine-tuning answers are a value of the asked kind at all:
    when the model has learned the question format, right or wrong (NaN: never)."""
    check_probability("level", level)
    return _first_epoch(accuracy(curves, "fine-tuning", column="names_a_value")[share], level)


def epochs_to_fit(curves: pd.DataFrame, share: float, known: bool, level: float = 0.8) -> float:
    """Epochs after the format is learned (:func:`format_epoch`) until the fine-tuning examples of one kind
    reach accuracy ``level`` (NaN: never). Counting from the format separates learning the facts from learning
    the new question tokens, which a large model prompted with examples never needs."""
    check_probability("level", level)
    return _first_epoch(accuracy(curves, "fine-tuning", known)[share], level) - format_epoch(curves, share)


def early_stopping(curves: pd.DataFrame, known: bool | None = None) -> pd.DataFrame:
    """Per unknown share: test accuracy at the last epoch and at the epoch with the best development accuracy."""
    dev, test = accuracy(curves, "dev"), accuracy(curves, "test", known)
    rows = []
    for share in test.columns:
        d, t = dev[share].dropna(), test[share].dropna()
        best = d.idxmax()
        rows.append({"unknown_share": share, "best_epoch": best, "final": t.iloc[-1], "early_stopped": t[best]})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# The page's experiment


@dataclass(frozen=True)
class Config:
    """The base model (chapter 2.1's crisp regime), the abstention fine-tuning, and the unknown-facts sets."""

    biographies: BiographyConfig = BiographyConfig()
    abstention_steps: int = 100
    idk_max_exposures: int = 2  # people seen at most this often get the answer <idk>
    targets: tuple[float, ...] = (0.0, 0.5, 0.75, 0.9)
    unknown: UnknownExamplesConfig = UnknownExamplesConfig()

    def __post_init__(self):
        check_positive_int("abstention_steps", self.abstention_steps)
        check_positive_int("idk_max_exposures", self.idk_max_exposures, allow_zero=True)
        for t in self.targets:
            check_probability("targets", t, open_high=True)
        if not isinstance(self.unknown, UnknownExamplesConfig):
            raise TypeError(f"unknown must be an UnknownExamplesConfig; got {type(self.unknown).__name__}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The crisp biography world and the unknown-facts sets at ``scale``."""
        return cls(BiographyConfig.for_scale(scale), unknown=UnknownExamplesConfig.for_scale(scale))


@dataclass
class Run:
    """The base model, the guessing and abstaining models' answers, and the unknown-facts curves."""

    base: BiographyModel
    abstention: AbstentionRun
    unknown: UnknownExamplesRun


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train (or load) the base model, fine-tune it to guess and to abstain, then on sets with unknown facts."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be an abstention.Config; got {type(config).__name__}")
    base = biography_model(config.biographies, seed=seed, device=device, progress=progress)
    abstention = compare_abstention(
        base,
        steps=config.abstention_steps,
        idk_max_exposures=config.idk_max_exposures,
        seed=seed,
        targets=config.targets,
        device=device,
        progress=progress,
    )
    unknown = fine_tune_with_unknowns(base, config.unknown, seed=seed, device=device, progress=progress)
    return Run(base, abstention, unknown)


def tradeoffs(run: Run) -> list[Tradeoff]:
    """The page's two entries in the trade-off ledger: IDK fine-tuning, and early stopping with unknown facts."""
    rates = {v: outcome_rates(a) for v, a in run.abstention.answers.groupby("variant")}
    guess, abstain = rates["guessing"], rates["abstaining"]
    seconds = run.abstention.train_seconds
    curves = run.unknown.curves
    known_stops = early_stopping(curves, known=True).set_index("unknown_share")
    all_stops = early_stopping(curves).set_index("unknown_share")
    return [
        Tradeoff(
            mitigation="IDK fine-tuning",
            page="ch04_6_abstention",
            task="fact questions about people fine-tuning never mentioned",
            error_name="hallucination rate",
            error=(guess["hallucination"], abstain["hallucination"]),
            accuracy=(guess["accuracy"], abstain["accuracy"]),
            compute_ratio=seconds["abstaining"] / seconds["guessing"],
            compute_unit="fine-tuning wall time",
            needs="a cut-off for what the model should know (exposure counts)",
        ),
        Tradeoff(
            mitigation="early stopping (unknown facts)",
            page="ch04_6_abstention",
            task="QA fine-tuning with half of the facts unknown; held-out facts the model knew",
            error_name="held-out error on known facts",
            error=(1 - known_stops.final[0.5], 1 - known_stops.early_stopped[0.5]),
            accuracy=(all_stops.final[0.5], all_stops.early_stopped[0.5]),
            compute_ratio=known_stops.best_epoch[0.5] / curves[curves.unknown_share == 0.5].epoch.max(),
            compute_unit="fine-tuning steps",
            needs="a development set with answers",
        ),
    ]
