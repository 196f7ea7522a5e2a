"""Abstention and evaluation incentives (chapter 4.6).

Kalai et al. (2025) argue that hallucinations persist because evaluations reward guessing: under right/wrong
grading an "I don't know" scores the same as a wrong answer, so a model that always guesses scores at least as
well as one that abstains. With a *confidence target* t — right +1, wrong −t/(1−t), abstain 0 — answering
pays only when the model's chance of being right exceeds t, and abstaining on what it does not know wins.

The experiment fine-tunes the chapter 2.1 model on statements about half of its people. The *guessing*
variant is fine-tuned on their true values only; the *abstaining* variant is fine-tuned with the answer
``<idk>`` for people seen at most ``idk_max_exposures`` times in pretraining. Both are evaluated on the other
half of the people, whom fine-tuning never mentioned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .runtime import check_probability
from .tokenizer import IDK_TOKEN
from .world import make_probes


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
    answers: pd.DataFrame  # per variant and held-out probe: the model's choice among values and <idk>
    scores: pd.DataFrame  # per variant and confidence target t
    train_seconds: dict  # per variant: wall time of its fine-tuning


def judge_with_idk(logits: torch.Tensor, probes, tokenizer) -> pd.DataFrame:
    """The model's answer among the attribute's values *and* ``<idk>``: greedy over those tokens."""
    from .world import ATTRIBUTES

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


def run_abstention(
    base_run,
    *,
    steps: int = 100,
    idk_max_exposures: int = 2,
    seed: int = 0,
    targets=(0.0, 0.5, 0.75, 0.9),
    device="auto",
    progress: bool = True,
) -> AbstentionRun:
    """Fine-tune two copies of ``base_run.model`` (an :class:`~halluc_lib.exposure.ExposureRun`) and compare."""
    import copy

    from . import batching, probe
    from .train import TrainConfig, train

    world, tok = base_run.world, base_run.tokenizer
    rng = np.random.default_rng([seed, 46])
    people = rng.permutation(world.n_people)
    tune_people, eval_people = sorted(people[: len(people) // 2]), sorted(people[len(people) // 2 :])
    eval_probes = make_probes(world, people=eval_people)
    answers, scores, seconds = [], [], {}
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
        seconds[variant] = result.seconds
        logits = probe.next_token_logits(model, tok, eval_probes, device=device)
        judged = judge_with_idk(logits, eval_probes, tok).assign(variant=variant)
        answers.append(judged)
        for t in targets:
            scores.append({"variant": variant, "t": t, "score": confidence_target_score(judged, t)})
    return AbstentionRun(pd.concat(answers, ignore_index=True), pd.DataFrame(scores), seconds)
