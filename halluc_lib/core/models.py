"""Tiny transformers built from ``transformers`` configs and trained from scratch (chapter 1).

Nothing is downloaded: every model is ``Model(Config(...))`` with random weights. Dropout defaults to zero
because the experiments study memorisation, which dropout only slows down.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForPreTraining,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerBase,
)

from .runtime import check_positive_int, check_probability


def _ids(tokenizer: PreTrainedTokenizerBase) -> dict:
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer; got {type(tokenizer).__name__}")
    return {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
    }


def tiny_gpt(
    tokenizer: PreTrainedTokenizerBase,
    *,
    n_layer: int = 2,
    n_embd: int = 128,
    n_head: int = 4,
    n_positions: int = 128,
    dropout: float = 0.0,
) -> GPT2LMHeadModel:
    """A GPT-2-architecture causal language model (with the exact GELU), ~450k parameters at the defaults."""
    ids = _ids(tokenizer)
    for name, v in (
        ("n_layer", n_layer),
        ("n_embd", n_embd),
        ("n_head", n_head),
        ("n_positions", n_positions),
    ):
        check_positive_int(name, v)
    if n_embd % n_head:
        raise ValueError(f"n_embd must be divisible by n_head; got n_embd={n_embd}, n_head={n_head}")
    check_probability("dropout", dropout, open_high=True)
    config = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        # The exact GELU (erf), as BERT's: GPT-2's tanh approximation ("gelu_new", or the fused
        # "gelu_pytorch_tanh") is the same curve to within 1e-3, but its CPU kernel is slower. On the 2-core
        # machine, for chapter 1's 2,112×512 activation, forward and backward took 1.16 and 1.14 ms with the
        # tanh kernel against 0.29 and 0.56 ms exact, and a training step of chapter 1's GPT 50 -> 43 ms
        # (two threads) and 69 -> 61 ms (one). Six separate elementwise ops ("gelu_new") were slower still.
        activation_function="gelu",
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **ids,
    )
    model = GPT2LMHeadModel(config)
    # transformers picks a model's loss by its class name, and "GPT2LMHeadModel" matches none of its names: the
    # first loss of every run printed "`loss_type=None` ... unrecognized" before falling back to the causal-LM
    # loss. Naming that loss keeps the pages' output clean; the loss is the same.
    model.loss_type = "ForCausalLM"
    return model


def _bert_config(
    tokenizer: PreTrainedTokenizerBase,
    *,
    n_layer: int = 2,
    hidden: int = 128,
    n_head: int = 4,
    max_positions: int = 128,
    dropout: float = 0.0,
    **extra,
) -> BertConfig:
    """The tiny BERT every BERT-family model here shares: 2 layers, 128 wide, 4 heads by default."""
    for name, v in (("n_layer", n_layer), ("hidden", hidden), ("n_head", n_head), ("max_positions", max_positions)):
        check_positive_int(name, v)
    if hidden % n_head:
        raise ValueError(f"hidden must be divisible by n_head; got hidden={hidden}, n_head={n_head}")
    check_probability("dropout", dropout, open_high=True)
    return BertConfig(
        num_hidden_layers=n_layer,
        hidden_size=hidden,
        num_attention_heads=n_head,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **_ids(tokenizer),
        **extra,
    )


def tiny_bert_mlm(tokenizer: PreTrainedTokenizerBase, **sizes) -> BertForMaskedLM:
    """A BERT-architecture masked language model (chapter 3.1); ``sizes`` are ``n_layer``, ``hidden``, ``n_head``."""
    return BertForMaskedLM(_bert_config(tokenizer, **sizes))


def tiny_bert_pretraining(tokenizer: PreTrainedTokenizerBase, **sizes) -> BertForPreTraining:
    """A BERT-architecture model with both pretraining heads, masked LM and next-sentence prediction."""
    return BertForPreTraining(_bert_config(tokenizer, **sizes))


def tiny_bert_classifier(tokenizer: PreTrainedTokenizerBase, num_labels: int, **sizes) -> BertForSequenceClassification:
    """A BERT-architecture sequence classifier (fine-tuning, chapters 3.2 and 6)."""
    num_labels = check_positive_int("num_labels", num_labels)
    if num_labels < 2:
        raise ValueError(f"num_labels must be >= 2; got {num_labels}")
    return BertForSequenceClassification(_bert_config(tokenizer, num_labels=num_labels, **sizes))


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct trainable parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())


class DigitMLP(nn.Module):
    """A small MLP for 2×8×8 coloured digits; ``color_blind=True`` sums the channels first, so colour is
    invisible to it. ``forward`` returns ``.loss`` and ``.logits`` like a transformers model, so the book's one
    training loop trains it."""

    def __init__(self, hidden: int = 64, color_blind: bool = False):
        super().__init__()
        self.color_blind = color_blind
        inputs = 64 if color_blind else 128
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, pixels: torch.Tensor, labels: torch.Tensor | None = None, **_) -> SimpleNamespace:
        x = pixels.sum(1, keepdim=True) if self.color_blind else pixels
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SimpleNamespace(loss=loss, logits=logits)
