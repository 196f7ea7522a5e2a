"""Chapter 6.3: what pretraining buys — the finance task fine-tuned from different starting points.

Chapter 6.2 fine-tunes a real pretrained BERT (all-MiniLM-L6-v2) on the finance sentiment task with the corrected
script (:mod:`halluc_lib.core.finetune`). This page asks what the pretraining bought: the same fine-tuning, with
the same budget, from random weights and from pretrained ones — for the tiny BERT of chapter 5.1 (pretrained on
1% and on 30% finance, :func:`halluc_lib.datasets.finance.pretrain_mlm`, from the cache when chapter 5.1 ran)
and for MiniLM. Each architecture has its own recipe (a 6-layer, 384-wide model wants a smaller learning rate
than a 2-layer, 128-wide one), shared by its random and its pretrained start.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import torch

from ..core import finetune, pretrained
from ..core.runtime import Device, check_positive_int, check_probability
from ..datasets import finance

#: The fine-tuning recipe of each architecture at chapter 6.3's budget of one epoch.
RECIPES = {
    "tiny BERT": finetune.FineTuneConfig(epochs=1, lr=5e-4),
    "MiniLM": finetune.FineTuneConfig(epochs=1, lr=1e-4),
}


def tiny_bert_starts(
    seed: int = 0, config: finance.PretrainConfig | None = None, *, device: Device = "auto", shares=(0.01, 0.3)
) -> dict:
    """``{name: (model, tokenizer)}``: chapter 5.1's tiny BERT from random weights and pretrained on each finance
    share in ``shares`` (loaded from the cache when chapter 5.1 ran), each with a new classification head."""
    config = config or finance.PretrainConfig()
    tok = finance.tokenizer_for_finance()
    torch.manual_seed(seed)
    starts = {"tiny BERT, random init": (config.size.bert_classifier(tok, 2), tok)}
    mlms = finance.pretrained_mlms(tok, config, shares=shares, seed=seed, device=device)
    for share in shares:
        torch.manual_seed(seed)
        model = config.size.bert_classifier(tok, 2)
        model.bert.load_state_dict(mlms[f"{share:.0%} finance"].bert.state_dict(), strict=False)  # no pooler in MLM
        starts[f"tiny BERT, {share:.0%} finance"] = (model, tok)
    return starts


def minilm_starts(seed: int = 0) -> dict:
    """``{name: (model, tokenizer)}``: MiniLM's architecture from random weights, and with its pretrained weights."""
    model, tok = pretrained.load_minilm_classifier(2)
    torch.manual_seed(seed)
    return {"MiniLM, random init": (type(model)(model.config), tok), "MiniLM, pretrained": (model, tok)}


def compare_starts(task: dict, starts: dict, *, seed: int = 0, device: Device = "auto", epochs: int | None = None):
    """Fine-tune every start on ``task["train"]`` with its architecture's recipe (``epochs`` overrides the
    budget) and predict ``task["test"]``. Returns ``(predictions, seconds)``: one row per (start, test sentence)
    with a ``pretraining`` column, and each start's fine-tuning time."""
    frames, seconds = [], {}
    for name, (model, tok) in starts.items():
        recipe = RECIPES[name.split(",")[0]]
        if epochs is not None:
            recipe = replace(recipe, epochs=epochs)
        result = finetune.fine_tune(model, tok, task["train"], recipe, seed=seed, device=device)
        frames.append(finetune.predict(result.model, tok, task["test"], device=device).assign(pretraining=name))
        seconds[name] = result.seconds
    return pd.concat(frames, ignore_index=True), pd.Series(seconds, name="fine-tuning seconds")


@dataclass(frozen=True)
class Config:
    """The tiny BERT's pretraining (chapter 5.1's), the finance shares compared, and the fine-tuning epochs."""

    pretraining: finance.PretrainConfig = finance.PretrainConfig()
    shares: tuple[float, ...] = (0.01, 0.3)
    epochs: int = 1

    def __post_init__(self):
        if not isinstance(self.pretraining, finance.PretrainConfig):
            raise TypeError(f"pretraining must be a PretrainConfig; got {type(self.pretraining).__name__}")
        for share in self.shares:
            check_probability("shares", share)
        check_positive_int("epochs", self.epochs)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Chapter 5.1's pretraining at ``scale``; one epoch of fine-tuning at both scales."""
        return cls(finance.PretrainConfig.for_scale(scale))


@dataclass
class Run:
    """Every start's test predictions, its fine-tuning time, and the summary table."""

    task: dict
    predictions: pd.DataFrame
    seconds: pd.Series
    table: pd.DataFrame  # per start: accuracy (shared / flipped words), errors, fine-tuning seconds


def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Build the five starts (tiny BERT random / 1% / 30%, MiniLM random / pretrained), fine-tune each for
    ``config.epochs`` on the finance task and predict its test set. ``progress`` is accepted for the common
    interface."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a what_pretraining_buys.Config; got {type(config).__name__}")
    task = finance.load_task(seed)
    starts = {
        **tiny_bert_starts(seed, config.pretraining, device=device, shares=config.shares),
        **minilm_starts(seed),
    }
    predictions, seconds = compare_starts(task, starts, seed=seed, device=device, epochs=config.epochs)
    return Run(task, predictions, seconds, finance.summarize_predictions(predictions).join(seconds))
