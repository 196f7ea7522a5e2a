"""Pretraining and fine-tuning losses written out by hand (chapter 3.1).

Each function computes, with plain tensor operations, a loss that ``transformers`` also computes inside its
models, so the chapter can check the two agree to 1e-5 and the formulas in the prose are the ones that run.
The source document's §4.1 formula is here too (:func:`source_vocabulary_sum_loss`), to show numerically why
it is not a language-model loss at all.
"""

from __future__ import annotations

import torch

from .batching import IGNORE_INDEX
from .runtime import check_probability


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


def mask_for_mlm(
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    vocab_size: int,
    special_ids: set[int],
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption: select ``probability`` of the non-special positions; of those, 80% become
    ``[MASK]``, 10% a random token, 10% stay. Returns ``(corrupted_ids, labels)`` with labels ``IGNORE_INDEX``
    everywhere except at the selected positions, where they hold the original token."""
    check_probability("probability", probability, open_low=True)
    candidates = torch.ones_like(input_ids, dtype=torch.bool)
    for sid in special_ids:
        candidates &= input_ids != sid
    draw = torch.rand(input_ids.shape, generator=generator)
    selected = candidates & (draw < probability)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    action = torch.rand(input_ids.shape, generator=generator)
    corrupted = input_ids.clone()
    corrupted[selected & (action < 0.8)] = mask_id
    randomize = selected & (action >= 0.8) & (action < 0.9)
    corrupted[randomize] = torch.randint(vocab_size, input_ids.shape, generator=generator)[randomize]
    return corrupted, labels


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BERT's MLM objective: −(1/|M|) Σ_{i∈M} log p(x_i | x̃), over the selected positions M only,
    each predicted from the whole corrupted sequence x̃ (both sides)."""
    return token_nll(logits, labels)


def next_sentence_loss(logits: torch.Tensor, is_random_next: torch.Tensor) -> torch.Tensor:
    """BERT's NSP objective: −log p(label | [CLS] A [SEP] B), label 0 = B follows A, 1 = B is random."""
    return token_nll(logits, is_random_next)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fine-tuning: −(1/N) Σ_i log p(y_i | x_i). This is where labels enter (chapter 3.2)."""
    return token_nll(logits, labels)


def source_vocabulary_sum_loss(logits: torch.Tensor) -> torch.Tensor:
    """The source document's §4.1 formula: Σ_i ( −Σ_{j=1..V} log p(x_j | x_<i) ), averaged over positions.

    It sums the log-probability of *every* vocabulary item and never looks at the observed token, so it is
    minimised by the uniform distribution: a model trained on it would learn nothing about the data.
    """
    return -(logits.float().log_softmax(-1).sum(-1)).mean()


def nsp_batch(corpus: list[str], tokenizer, n_pairs: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Sentence pairs for next-sentence prediction from biographies: half true continuations, half random.

    Each example is ``<cls> A <sep> B <sep>`` with segment ids 0 for A and 1 for B; ``next_sentence_label``
    is 0 when B follows A in its biography and 1 when B was drawn from another one (BERT's convention).
    """
    import numpy as np

    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1; got {n_pairs}")
    docs = [[s.strip() + " ." for s in doc.split(" .") if s.strip()] for doc in corpus]
    docs = [d for d in docs if len(d) >= 2]
    if len(docs) < 2:
        raise ValueError("corpus must hold at least two documents of two or more sentences")
    rng = np.random.default_rng(seed)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    rows, segments, labels = [], [], []
    for _ in range(n_pairs):
        d = int(rng.integers(len(docs)))
        i = int(rng.integers(len(docs[d]) - 1))
        first = docs[d][i]
        if rng.random() < 0.5:
            second, label = docs[d][i + 1], 0
        else:
            other = (d + 1 + int(rng.integers(len(docs) - 1))) % len(docs)
            second, label = docs[other][int(rng.integers(len(docs[other])))], 1
        a = tokenizer(first, add_special_tokens=False)["input_ids"]
        b = tokenizer(second, add_special_tokens=False)["input_ids"]
        rows.append([cls_id, *a, sep_id, *b, sep_id])
        segments.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
        labels.append(label)
    width = max(len(r) for r in rows)
    ids = torch.full((n_pairs, width), tokenizer.pad_token_id)
    types = torch.zeros((n_pairs, width), dtype=torch.long)
    mask = torch.zeros((n_pairs, width), dtype=torch.long)
    for k, (r, s) in enumerate(zip(rows, segments, strict=True)):
        ids[k, : len(r)] = torch.tensor(r)
        types[k, : len(s)] = torch.tensor(s)
        mask[k, : len(r)] = 1
    return {
        "input_ids": ids,
        "token_type_ids": types,
        "attention_mask": mask,
        "next_sentence_label": torch.tensor(labels),
    }
