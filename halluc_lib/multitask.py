"""Multi-task training: biographies mixed with question answering, against pretraining then fine-tuning
(chapter 4.4).

Allen-Zhu & Li (2023, Part 3.1) found that a model pretrained on biographies and then fine-tuned to answer
questions about half of the people answers poorly about the other half — the knowledge is stored, but not in
a form questions can extract — while a model trained on biographies *mixed* with the question-answer pairs of
half of the people answers well about the other half too. Augmenting the biographies (several phrasings and
orders of each) also helped the sequential recipe. Our biographies use several templates in random order,
so this page measures how much of the gap remains at toy scale, and its spread over seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .runtime import check_positive_int, check_probability, check_scale
from .world import ATTRIBUTES, Probe, World, build_corpus, make_world

QUESTIONS = {
    "birth_city": "question : where was {name} born ? answer :",
    "birth_year": "question : in which year was {name} born ? answer :",
    "university": "question : where did {name} study ? answer :",
    "employer": "question : who employs {name} ? answer :",
}
REGIMES = ("mixed", "sequential")  # and "pretrained only": the sequential model before QA fine-tuning


def qa_probes(world: World, people) -> list[Probe]:
    """One question per (person, attribute) in :data:`QUESTIONS`' form; the answer is the next token."""
    probes = []
    for p in people:
        for j, attr in enumerate(world.attributes):
            probes.append(
                Probe(
                    person=int(p),
                    attribute=attr,
                    prompt=QUESTIONS[attr].format(name=world.names[p]),
                    answer=world.values[p][j],
                    exposures=world.exposures[p],
                    template=-1,
                )
            )
    return probes


def qa_documents(world: World, people) -> list[str]:
    """Question-answer training documents: each question followed by its answer."""
    return [f"{p.prompt} {p.answer} ." for p in qa_probes(world, people)]


def qa_vocabulary() -> list[str]:
    return [q.replace("{name}", " ") for q in QUESTIONS.values()]


@dataclass(frozen=True)
class MultitaskConfig:
    """Sizes: ``n_people`` people each seen ``exposures`` times; QA pairs of ``qa_share`` of them are trained."""

    n_people: int = 200
    exposures: int = 4
    qa_share: float = 0.5
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    batch_size: int = 32
    pretrain_steps: int = 600
    finetune_steps: int = 150
    lr: float = 3e-3
    finetune_lr: float = 1e-3

    def __post_init__(self):
        for name in ("n_people", "exposures", "pretrain_steps", "finetune_steps", "batch_size"):
            check_positive_int(name, getattr(self, name))
        check_probability("qa_share", self.qa_share, open_low=True, open_high=True)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> MultitaskConfig:
        check_scale(scale)
        if scale == "quick":
            return cls()
        return cls(n_people=1000, exposures=8, n_layer=4, n_embd=256, n_head=8, batch_size=64, pretrain_steps=3000)


@dataclass
class MultitaskRun:
    config: MultitaskConfig
    world: World
    answers: pd.DataFrame  # regime, split (trained / held-out), probe kind (question / biography), correct


def run_multitask(config: MultitaskConfig, *, seed: int = 0, device="auto", progress: bool = True) -> MultitaskRun:
    """Train the *mixed* and the *sequential* model on the same world and ask both about every person.

    Both see the same biographies and the same QA pairs for the same number of steps in all: the mixed model
    for ``pretrain_steps + finetune_steps`` steps on biographies and QA pairs shuffled together; the
    sequential one for ``pretrain_steps`` on biographies, then ``finetune_steps`` on the QA pairs alone.
    """
    import copy

    import torch

    from . import batching, models, probe
    from .cache import train_cached
    from .tokenizer import build_tokenizer
    from .train import TrainConfig, train
    from .world import make_probes

    if not isinstance(config, MultitaskConfig):
        raise TypeError(f"config must be a MultitaskConfig; got {type(config).__name__}")
    world = make_world(np.full(config.n_people, config.exposures), seed=seed, schedule="uniform exposures")
    tok = build_tokenizer(world.vocabulary() + qa_vocabulary())
    people = np.random.default_rng([seed, 44]).permutation(world.n_people)
    n_trained = round(config.qa_share * world.n_people)
    splits = {"trained QA": sorted(people[:n_trained]), "held-out": sorted(people[n_trained:])}
    bios = build_corpus(world, seed=seed)
    qa = qa_documents(world, splits["trained QA"])

    def build():
        torch.manual_seed(seed)
        return models.tiny_gpt(tok, n_layer=config.n_layer, n_embd=config.n_embd, n_head=config.n_head)

    fields = asdict(config)
    key = {"experiment": "multitask", "world": world.checksum(), "seed": seed}
    mixed_key = key | {"regime": "mixed", "config": {k: v for k, v in fields.items() if k != "finetune_lr"}}
    skip = ("qa_share", "finetune_steps", "finetune_lr")  # pretraining sees biographies only
    pretrained_key = key | {"regime": "pretrained", "config": {k: v for k, v in fields.items() if k not in skip}}
    total = config.pretrain_steps + config.finetune_steps
    mixed, _, _ = train_cached(
        build,
        batching.LMBatches.from_texts(bios + qa, tok, batch_size=config.batch_size, seed=seed),
        TrainConfig(steps=total, lr=config.lr, seed=seed),
        key=mixed_key,
        device=device,
        progress=progress,
    )
    pretrained, _, _ = train_cached(
        build,
        batching.LMBatches.from_texts(bios, tok, batch_size=config.batch_size, seed=seed),
        TrainConfig(steps=config.pretrain_steps, lr=config.lr, seed=seed),
        key=pretrained_key,
        device=device,
        progress=progress,
    )
    sequential = copy.deepcopy(pretrained)
    train(
        sequential,
        batching.LMBatches.from_texts(qa, tok, batch_size=config.batch_size, seed=seed),
        TrainConfig(steps=config.finetune_steps, lr=config.finetune_lr, warmup_fraction=0.0, seed=seed),
        device=device,
        progress=progress,
    )
    frames = []
    for regime, model in (("mixed", mixed), ("sequential", sequential), ("pretrained only", pretrained)):
        for split, ids in splits.items():
            for kind, probes in (("question", qa_probes(world, ids)), ("biography", make_probes(world, people=ids))):
                answers = probe.answer_probes(model, tok, probes, device=device)
                frames.append(answers.assign(regime=regime, split=split, kind=kind))
    return MultitaskRun(config, world, pd.concat(frames, ignore_index=True))


def accuracy_table(run: MultitaskRun) -> pd.DataFrame:
    """Accuracy per regime, split and probe kind."""
    return run.answers.groupby(["regime", "split", "kind"]).correct.mean().unstack("kind")


def chance_accuracy() -> float:
    """Mean chance accuracy over the attributes (one over the number of values)."""
    return float(np.mean([1 / len(a.values) for a in ATTRIBUTES.values()]))
