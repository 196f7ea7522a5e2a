"""Fine-tuning on facts the model does not know (chapter 4.6, second half).

Gekhman et al. (2024) fine-tuned a pretrained model to answer closed-book questions and sorted the fine-tuning
examples by whether the model already knew the answer. Examples it did not know (*unknown*) were fitted much
later than known ones, and the more of them the fine-tuning set held, the worse the fine-tuned model answered
held-out questions once they were fitted: fine-tuning on new facts teaches the model to answer past what it
knows. Stopping early — before the unknown examples are fitted — avoided most of the damage.

Here the pretrained model is the chapter 2.1 model. Question answering is a new format for it: its tokenizer
is extended with the question words (:func:`halluc_lib.tokenizer.extend_tokenizer`) and the embeddings resized.
A fact is *known* when the pretrained model completes its biography sentence correctly. Fine-tuning sets
share the same known facts and differ only in the unknown facts added to them; every model is evaluated
during fine-tuning on its own examples (known and unknown apart), on a development set and on a test set of
people fine-tuning never mentioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .multitask import qa_probes, qa_vocabulary
from .probe import names_a_value
from .runtime import check_positive_int, check_probability, check_scale, model_device
from .world import make_probes


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
        check_scale(scale)
        if scale == "quick":
            return cls()
        return cls(n_known=1200, unknown_shares=(0.0, 0.25, 0.5, 0.75), batch_size=64)


@dataclass
class UnknownExamplesRun:
    config: UnknownExamplesConfig
    knowledge: pd.DataFrame  # per (person, attribute): known to the pretrained model?
    curves: pd.DataFrame  # per share, step, split and known: accuracy


def knowledge_of(model, tokenizer, world, *, device="auto") -> pd.DataFrame:
    """Which facts the pretrained model knows: its greedy completion of the first biography phrasing is right."""
    answers = answers_of(model, tokenizer, make_probes(world), device)
    return answers[["person", "attribute", "exposures", "correct"]].rename(columns={"correct": "known"})


def answers_of(model, tokenizer, probes, device) -> pd.DataFrame:
    from . import probe

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


def run_unknown_examples(
    base_run, config: UnknownExamplesConfig, *, seed: int = 0, device="auto", progress: bool = True
) -> UnknownExamplesRun:
    """Fine-tune a copy of ``base_run.model`` (an :class:`~halluc_lib.exposure.ExposureRun`) on each set."""
    import copy

    from . import batching
    from .tokenizer import extend_tokenizer
    from .train import TrainConfig, train

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
    curves = []
    for share, examples in fine_tuning_sets(world, knowledge, groups["fine-tuning"], config, seed).items():
        splits = {"fine-tuning": ([p for p, _ in examples], [k for _, k in examples]), **heldout}

        def evaluate(model, step, splits=splits):
            rows = []
            for split, (split_probes, flags) in splits.items():
                answers = answers_of(model, tok, split_probes, model_device(model))
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
        steps = config.epochs * per_epoch  # every known example is seen equally often in every set
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
