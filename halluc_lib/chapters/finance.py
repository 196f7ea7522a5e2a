"""Chapter 5.1: finance, a domain that was rare in pretraining.

A model pretrained on text where finance is rare learns the general reading of domain-flipped words and
carries it into a finance task — a confident error that no amount of general text can fix. The data and the
pretrained masked LMs are in :mod:`halluc_lib.datasets.finance`; this module fine-tunes them as cloze
classifiers and reads what they learned.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import parallel, recipes
from ..core.runtime import Device, check_positive_int
from ..datasets.finance import (
    DOMAINS,
    FLIPPED,
    SHARED,
    SUBJECTS,
    TEMPLATE,
    PretrainConfig,
    encode,
    load_task,
    polarity,
    pretrained_mlms,
    summarize_predictions,
    tokenizer_for_finance,
)


@dataclass(frozen=True)
class Config:
    """The masked LMs' pretraining (:class:`~halluc_lib.datasets.finance.PretrainConfig`) and the cloze
    fine-tuning every start gets."""

    pretraining: PretrainConfig = PretrainConfig()
    finetune_steps: int = 150
    finetune_batch_size: int = 32
    finetune_lr: float = 1e-4  # at 5e-4 the 30% model's finance reading is partly overwritten (seeds 0, 2)

    def __post_init__(self):
        if not isinstance(self.pretraining, PretrainConfig):
            raise TypeError(f"pretraining must be a PretrainConfig; got {type(self.pretraining).__name__}")
        check_positive_int("finetune_steps", self.finetune_steps)
        check_positive_int("finetune_batch_size", self.finetune_batch_size)
        if not self.finetune_lr > 0:
            raise ValueError(f"finetune_lr must be > 0; got {self.finetune_lr!r}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The pretraining at ``scale``; the same fine-tuning at both scales."""
        return cls(PretrainConfig.for_scale(scale))


@torch.inference_mode()
def _judge(model: torch.nn.Module, input_ids: torch.Tensor, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the predicted label, the probability of the prediction and whether it is right."""
    confidence, predicted = model(input_ids=input_ids).logits.softmax(-1).max(-1)
    return frame.assign(
        predicted=predicted.numpy(), confidence=confidence.numpy(), correct=predicted.numpy() == frame.label.to_numpy()
    )


@dataclass
class Run:
    """Every start's predictions on the finance test set, the starts themselves, and the task."""

    config: Config
    task: dict
    predictions: pd.DataFrame  # one row per (pretraining, test sentence)
    pretrained: dict  # pretraining name -> the masked LM it starts from (random weights for "random init")
    tokenizer: object


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = False) -> Run:
    """Pretrain one tiny BERT per finance share (cached), fine-tune each as a :class:`ClozeClassifier` — and
    one from random weights — on the finance task of ``seed`` (:func:`~halluc_lib.datasets.finance.load_task`),
    and predict the test sentences with each. The pretrainings run side by side, then the fine-tunings
    (:mod:`halluc_lib.core.parallel`)."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a finance.Config; got {type(config).__name__}")
    task = load_task(seed)
    tok = tokenizer_for_finance()
    torch.manual_seed(seed)
    starts = {"random init": config.pretraining.size.bert_mlm(tok)}
    starts |= pretrained_mlms(tok, config.pretraining, seed=seed, device=device, progress=progress)
    tuned = parallel.side_by_side(  # the fine-tunings are independent too
        [
            partial(fine_tune_cloze, tok, task["train"], config, start_from=s, seed=seed, device=device)
            for s in starts.values()
        ],
        device=device,
    )
    frames = [predict_cloze(m, tok, task["test"]).assign(pretraining=n) for n, m in zip(starts, tuned, strict=True)]
    return Run(config, task, pd.concat(frames, ignore_index=True), starts, tok)


@torch.inference_mode()
def read_senses(mlm: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> pd.DataFrame:
    """How a pretrained masked LM reads each flipped word in each domain: in "<subject> : <word> and [MASK]",
    the share of the sentiment-word probability that goes to positive words (one row per word and domain).
    ``reads_as`` is the polarity that share implies; ``right`` compares it with the word's polarity there."""
    positive = tokenizer.convert_tokens_to_ids([w for w, s in SHARED.items() if s > 0])
    negative = tokenizer.convert_tokens_to_ids([w for w, s in SHARED.items() if s < 0])
    mlm.eval()
    rows = []
    for domain in DOMAINS:
        for word in FLIPPED:
            texts = [TEMPLATE.format(subject=s, w1=word, w2="good") for s in SUBJECTS[domain]]
            ids = encode(texts, tokenizer)
            ids[:, -2] = tokenizer.mask_token_id  # the partner word, before <sep>
            p = mlm(input_ids=ids).logits[:, -2].softmax(-1)
            share = (p[:, positive].sum(-1) / (p[:, positive].sum(-1) + p[:, negative].sum(-1))).mean().item()
            reads_as = 1 if share > 0.5 else -1
            rows.append(
                {
                    "word": word,
                    "domain": domain,
                    "p_positive": share,
                    "reads_as": reads_as,
                    "right": reads_as == polarity(word, domain),
                }
            )
    return pd.DataFrame(rows)


#: Label words of the cloze classifier: the masked partner word is read as the sentence's sentiment.
LABEL_WORDS = ("bad", "good")


def cloze_texts(frame: pd.DataFrame) -> list[str]:
    """Each sentence's sentiment word followed by a masked partner: "<subject> : <word> and [MASK]"."""
    subjects = frame.text.str.split().str[0]
    return [TEMPLATE.format(subject=s, w1=w, w2="good") for s, w in zip(subjects, frame.word, strict=True)]


class ClozeClassifier(torch.nn.Module):
    """Sentiment read from a masked LM (Schick & Schütze 2021): the logits of the label words at the masked
    partner position are the class logits. Fine-tuning it keeps the pretraining task's form, so what the masked
    LM learned about a word carries over to the classification directly."""

    def __init__(self, mlm: torch.nn.Module, tokenizer: PreTrainedTokenizerBase):
        super().__init__()
        self.mlm, self.mask_id = mlm, tokenizer.mask_token_id
        self.register_buffer("label_ids", torch.tensor(tokenizer.convert_tokens_to_ids(list(LABEL_WORDS))))

    def forward(self, input_ids, labels=None, **_):
        masked = input_ids.clone()
        masked[:, -2] = self.mask_id
        logits = self.mlm(input_ids=masked).logits[:, -2][:, self.label_ids]
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)


def fine_tune_cloze(
    tokenizer: PreTrainedTokenizerBase,
    train_frame: pd.DataFrame,
    config: Config,
    *,
    start_from,
    seed: int = 0,
    device: Device = "auto",
) -> ClozeClassifier:
    """A :class:`ClozeClassifier` on a copy of ``start_from`` (a pretrained masked LM), fine-tuned on
    ``train_frame`` with ``config``'s fine-tuning budget; returned on the CPU in eval mode."""
    data = {
        "input_ids": encode(cloze_texts(train_frame), tokenizer),
        "labels": torch.tensor(np.asarray(train_frame.label)),
    }
    return recipes.train_classifier(
        lambda: ClozeClassifier(copy.deepcopy(start_from), tokenizer),
        data,
        config.finetune_steps,
        batch_size=config.finetune_batch_size,
        lr=config.finetune_lr,
        seed=seed,
        device=device,
    ).model


def predict_cloze(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the predicted label, the probability of the prediction and whether it is right."""
    return _judge(model, encode(cloze_texts(frame), tokenizer), frame)


def summary(run: Run) -> pd.DataFrame:
    """Per start: test accuracy on shared and on flipped words, and the confidence of wrong answers
    (:func:`~halluc_lib.datasets.finance.summarize_predictions` of the run's predictions)."""
    return summarize_predictions(run.predictions)
