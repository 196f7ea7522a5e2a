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

import copy
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..core import parallel, probe, recipes
from ..core.batching import LMBatches
from ..core.ledger import Tradeoff
from ..core.recipes import ModelSize
from ..core.runtime import Device, check_positive_int, check_probability, check_scale
from ..core.tokenizer import build_tokenizer
from ..core.train import TrainConfig, train
from ..core.world import ATTRIBUTES, World, build_corpus, make_probes, make_world
from ..datasets.qa import qa_documents, qa_probes, qa_vocabulary

REGIMES = ("mixed", "sequential")  # and "pretrained only": the sequential model before QA fine-tuning


@dataclass(frozen=True)
class Config:
    """Sizes: ``n_people`` people each seen ``exposures`` times; QA pairs of ``qa_share`` of them are trained."""

    n_people: int = 200
    exposures: int = 4
    qa_share: float = 0.5
    size: ModelSize = ModelSize()
    batch_size: int = 32
    # 18 passes over the biographies: at 600 (24 passes) the claims held with the same margins, a third slower
    pretrain_steps: int = 450
    finetune_steps: int = 150
    lr: float = 3e-3
    finetune_lr: float = 1e-3

    def __post_init__(self):
        for name in ("n_people", "exposures", "pretrain_steps", "finetune_steps", "batch_size"):
            check_positive_int(name, getattr(self, name))
        check_probability("qa_share", self.qa_share, open_low=True, open_high=True)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 200 people seen 4 times, the quick model; full: 1,000 people seen 8 times, the full model."""
        if check_scale(scale) == "quick":
            return cls()
        return cls(n_people=1000, exposures=8, size=ModelSize.for_scale("full"), batch_size=64, pretrain_steps=3000)


@dataclass
class Run:
    """Every answer of every regime: ``regime``, ``split`` (trained QA / held-out), ``kind`` (question /
    biography) and ``correct``, beside the usual probe columns."""

    config: Config
    world: World
    answers: pd.DataFrame  # regime, split (trained / held-out), probe kind (question / biography), correct


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Train the *mixed* and the *sequential* model on the same world and ask both about every person.

    Both see the same biographies and the same QA pairs for the same number of steps in all: the mixed model
    for ``pretrain_steps + finetune_steps`` steps on biographies and QA pairs shuffled together; the
    sequential one for ``pretrain_steps`` on biographies, then ``finetune_steps`` on the QA pairs alone. The two
    train side by side (:mod:`halluc_lib.core.parallel`; a worker draws no progress bar).
    """

    if not isinstance(config, Config):
        raise TypeError(f"config must be a multitask.Config; got {type(config).__name__}")
    world = make_world(np.full(config.n_people, config.exposures), seed=seed, schedule="uniform exposures")
    tok = build_tokenizer(world.vocabulary() + qa_vocabulary())
    people = np.random.default_rng([seed, 44]).permutation(world.n_people)
    n_trained = round(config.qa_share * world.n_people)
    splits = {"trained QA": sorted(people[:n_trained]), "held-out": sorted(people[n_trained:])}
    bios = build_corpus(world, seed=seed)
    qa = qa_documents(world, splits["trained QA"])

    fields = asdict(config)
    key = {"experiment": "multitask", "world": world.checksum(), "seed": seed}
    mixed_key = key | {"regime": "mixed", "config": {k: v for k, v in fields.items() if k != "finetune_lr"}}
    skip = ("qa_share", "finetune_steps", "finetune_lr")  # pretraining sees biographies only
    pretrained_key = key | {"regime": "pretrained", "config": {k: v for k, v in fields.items() if k not in skip}}
    total = config.pretrain_steps + config.finetune_steps
    options = {"batch_size": config.batch_size, "lr": config.lr, "seed": seed, "device": device, "progress": progress}

    def train_mixed():
        return recipes.train_lm(bios + qa, tok, config.size, total, cache_key=mixed_key, **options).model

    def train_sequential():
        pretrained = recipes.train_lm(
            bios, tok, config.size, config.pretrain_steps, cache_key=pretrained_key, **options
        )
        sequential = copy.deepcopy(pretrained.model)
        train(
            sequential,
            LMBatches.from_texts(qa, tok, batch_size=config.batch_size, seed=seed),
            TrainConfig(steps=config.finetune_steps, lr=config.finetune_lr, warmup_fraction=0.0, seed=seed),
            device=device,
            progress=progress,
        )
        return pretrained.model, sequential

    # the two regimes train independently, for the same number of steps: side by side
    mixed, (pretrained, sequential) = parallel.side_by_side([train_mixed, train_sequential], device=device)
    frames = []
    for regime, model in (("mixed", mixed), ("sequential", sequential), ("pretrained only", pretrained)):
        for split, ids in splits.items():
            for kind, probes in (("question", qa_probes(world, ids)), ("biography", make_probes(world, people=ids))):
                answers = probe.answer_probes(model, tok, probes, device=device)
                frames.append(answers.assign(regime=regime, split=split, kind=kind))
    return Run(config, world, pd.concat(frames, ignore_index=True))


def accuracy_table(run: Run) -> pd.DataFrame:
    """Accuracy per regime, split and probe kind."""
    return run.answers.groupby(["regime", "split", "kind"]).correct.mean().unstack("kind")


def chance_accuracy() -> float:
    """Mean chance accuracy over the attributes (one over the number of values)."""
    return float(np.mean([1 / len(a.values) for a in ATTRIBUTES.values()]))


def tradeoffs(run: Run) -> list[Tradeoff]:
    """The page's entry in the trade-off ledger: mixed against sequential training, on held-out questions."""
    held = accuracy_table(run).xs("held-out", level="split")
    mixed, sequential = held.loc["mixed", "question"], held.loc["sequential", "question"]
    return [
        Tradeoff(
            mitigation="multi-task training",
            page="ch04_4_multitask",
            task="questions about people whose QA was never trained",
            error_name="wrong answers",
            error=(1 - sequential, 1 - mixed),
            accuracy=(sequential, mixed),
            compute_ratio=1.0,
            compute_unit="training steps (equal by design)",
            needs="question-answer pairs for some of the people, during pretraining",
        )
    ]
