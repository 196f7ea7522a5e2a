"""The worked project (chapter 6): the finance task fine-tuned from different starting points.

Chapter 6.2 fine-tunes a real pretrained BERT (all-MiniLM-L6-v2) on the finance sentiment task with the corrected
script (:mod:`halluc_lib.finetune`). Chapter 6.3 asks what the pretraining bought: the same fine-tuning, with the
same budget, from random weights and from pretrained ones — for the tiny BERT of chapter 5.1 (pretrained on 1%
and on 30% finance) and for MiniLM. Each architecture has its own recipe (a 6-layer, 384-wide model wants a
smaller learning rate than a 2-layer, 128-wide one), shared by its random and its pretrained start.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from . import finance, finetune, models, pretrained

#: The fine-tuning recipe of each architecture at chapter 6.3's budget of one epoch.
RECIPES = {
    "tiny BERT": finetune.FineTuneConfig(epochs=1, lr=5e-4),
    "MiniLM": finetune.FineTuneConfig(epochs=1, lr=1e-4),
}


def tiny_bert_starts(seed: int = 0, config: finance.FinanceConfig | None = None, *, device="auto", shares=(0.01, 0.3)):
    """``{name: (model, tokenizer)}``: chapter 5.1's tiny BERT from random weights and pretrained on each finance
    share in ``shares`` (loaded from the cache when chapter 5.1 ran), each with a new classification head."""
    config = config or finance.FinanceConfig()
    tok = finance.tokenizer_for_finance()
    sizes = {"n_layer": config.n_layer, "hidden": config.hidden, "n_head": config.n_head}
    torch.manual_seed(seed)
    starts = {"tiny BERT, random init": (models.tiny_bert_classifier(tok, 2, **sizes), tok)}
    for share in shares:
        mlm = finance.pretrain(
            tok,
            finance.pretraining_corpus(config.pretrain_sentences, share, seed=seed),
            config,
            seed=seed,
            device=device,
        )
        torch.manual_seed(seed)
        model = models.tiny_bert_classifier(tok, 2, **sizes)
        model.bert.load_state_dict(mlm.bert.state_dict(), strict=False)  # a masked LM has no pooler
        starts[f"tiny BERT, {share:.0%} finance"] = (model, tok)
    return starts


def minilm_starts(seed: int = 0):
    """``{name: (model, tokenizer)}``: MiniLM's architecture from random weights, and with its pretrained weights."""
    model, tok = pretrained.load_minilm_classifier(2)
    torch.manual_seed(seed)
    return {"MiniLM, random init": (type(model)(model.config), tok), "MiniLM, pretrained": (model, tok)}


def compare_starts(task: dict, starts: dict, *, seed: int = 0, device="auto", epochs: int | None = None):
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
