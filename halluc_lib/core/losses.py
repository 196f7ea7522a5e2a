"""Language-model and classification losses written out with plain tensor operations (explained in chapter 3.1).

Each computes a loss that ``transformers`` also computes inside its models; chapter 3.1 checks the two agree to
1e-5, so the formulas in the prose are the ones that run. Chapter 2.2 scores held-out statements with
:func:`causal_lm_loss`.
"""

from __future__ import annotations

import torch

from .batching import IGNORE_INDEX


def _check_logits(logits: torch.Tensor, targets: torch.Tensor, name: str = "labels") -> None:
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits must have shape {tuple(targets.shape)} + (classes,); got {tuple(logits.shape)}")
    if targets.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer tensor; got {targets.dtype}")


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean of −log p(target) over positions whose target is not ``IGNORE_INDEX``."""
    _check_logits(logits, targets)
    keep = targets != IGNORE_INDEX
    if not keep.any():
        raise ValueError("targets must contain at least one position that is not IGNORE_INDEX")
    log_probs = logits.float().log_softmax(-1)
    picked = log_probs[keep].gather(-1, targets[keep].unsqueeze(-1)).squeeze(-1)
    return -picked.mean()


def causal_lm_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """GPT's objective: −(1/T) Σ_t log p(x_t | x_<t), the prediction at position t−1 scored on token t."""
    _check_logits(logits, input_ids, "input_ids")
    return token_nll(logits[:, :-1], input_ids[:, 1:])


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BERT's MLM objective: ``−(1/|M|) Σ_{i∈M} log p(x_i | x̃)``, over the selected positions M only,
    each predicted from the whole corrupted sequence x̃ (both sides)."""
    return token_nll(logits, labels)


def next_sentence_loss(logits: torch.Tensor, is_random_next: torch.Tensor) -> torch.Tensor:
    """BERT's NSP objective: −log p(label | [CLS] A [SEP] B), label 0 = B follows A, 1 = B is random."""
    return token_nll(logits, is_random_next)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fine-tuning: −(1/N) Σ_i log p(y_i | x_i). This is where labels enter (chapter 3.2)."""
    return token_nll(logits, labels)
