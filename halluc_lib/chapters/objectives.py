"""Chapter 3.1 and 3.2: the losses GPT and BERT are pretrained with, and where labels enter.

The losses themselves are written out by hand in :mod:`halluc_lib.core.losses`; :func:`run` computes each one
both by hand and inside a ``transformers`` model on the same batch, so the page can check they agree and the
formulas in the prose are the ones that run. The source document's §4.1 formula is here
(:func:`source_vocabulary_sum_loss`), to show numerically why it is not a language-model loss at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ..core import models
from ..core.batching import IGNORE_INDEX, mask_for_mlm
from ..core.losses import causal_lm_loss, classification_loss, masked_lm_loss, next_sentence_loss, token_nll
from ..core.runtime import Device, check_positive_int, check_scale
from ..core.tokenizer import world_tokenizer
from ..core.world import World, bucket_world, build_corpus


def source_vocabulary_sum_loss(logits: torch.Tensor) -> torch.Tensor:
    """The source document's §4.1 formula: Σ_i ( −Σ_{j=1..V} log p(x_j | x_<i) ), averaged over positions.

    It sums the log-probability of *every* vocabulary item and never looks at the observed token, so it is
    minimised by the uniform distribution: a model trained on it would learn nothing about the data.
    """
    return -(logits.float().log_softmax(-1).sum(-1)).mean()


def nsp_batch(
    corpus: list[str], tokenizer: PreTrainedTokenizerBase, n_pairs: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Sentence pairs for next-sentence prediction from biographies: half true continuations, half random.

    Each example is ``<cls> A <sep> B <sep>`` with segment ids 0 for A and 1 for B; ``next_sentence_label``
    is 0 when B follows A in its biography and 1 when B was drawn from another one (BERT's convention).
    """

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


@dataclass(frozen=True)
class Config:
    """The small biography world the losses are computed on, and how many documents go in a batch."""

    per_bucket: int = 20
    batch_docs: int = 16

    def __post_init__(self):
        check_positive_int("per_bucket", self.per_bucket)
        check_positive_int("batch_docs", self.batch_docs)

    @classmethod
    def for_scale(cls, scale: str = "quick") -> Config:
        """Quick: 20 people per bucket and 16 documents per batch; full: 200 and 128."""
        return cls() if check_scale(scale) == "quick" else cls(per_bucket=200, batch_docs=128)


@dataclass
class LossCheck:
    """One loss computed by hand and by ``transformers`` on the same batch, and by a wrong formula (``null``)
    that the check must be sharp enough to reject."""

    by_hand: float
    transformers: float
    null: float  # the same batch scored by a plausible wrong formula: the page's null model of the check

    @property
    def gap(self) -> float:
        """``|by hand − transformers|``."""
        return abs(self.by_hand - self.transformers)

    @property
    def null_gap(self) -> float:
        """``|null − transformers|``: what the check measures when the formula is wrong."""
        return abs(self.null - self.transformers)


@dataclass
class Run:
    """The three loss checks, the MLM selection rate, and the source's formula against the correct loss.

    The null of each check: the causal loss without its shift (the prediction at position t scored on token t,
    an off-by-one error), the source's §4.1 "BERT" formula on the masked positions, and, for fine-tuning, the
    source's formula over the classes, which never reads the label (the §4.2 error).
    """

    world: World
    tokenizer: object
    corpus: list[str]
    gpt: torch.nn.Module  # untrained: the losses are compared, not minimised
    causal: LossCheck
    masked: LossCheck  # masked LM + next-sentence prediction
    classification: LossCheck
    selected_rate: float  # share of real tokens selected for MLM
    source_formula: pd.DataFrame  # the correct NLL and the source's formula for two predictors


def source_formula_table(vocab_size: int, target_id: int) -> pd.DataFrame:
    """The correct negative log-likelihood and the source's formula for a predictor that puts 0.9 on the
    observed token and for the uniform predictor."""
    target = torch.tensor([[target_id]])
    knows = torch.full((1, 1, vocab_size), 0.1 / (vocab_size - 1))
    knows[0, 0, target] = 0.9
    uniform = torch.full((1, 1, vocab_size), 1 / vocab_size)
    return pd.DataFrame(
        {
            "predictor": ["knows the answer (p = 0.9)", "uniform"],
            "negative log-likelihood (correct loss)": [
                token_nll(knows.log(), target).item(),
                token_nll(uniform.log(), target).item(),
            ],
            "source's §4.1 formula": [
                source_vocabulary_sum_loss(knows.log()).item(),
                source_vocabulary_sum_loss(uniform.log()).item(),
            ],
        }
    )


@torch.no_grad()
def run(config: Config, *, seed: int = 0, device: Device = "auto", progress: bool = True) -> Run:
    """Compute every loss by hand and inside ``transformers`` on batches from a small biography world.

    Nothing is trained, so this runs on the CPU whatever ``device`` says (the record shows ``cpu``) and
    ``progress`` has nothing to show.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be an objectives.Config; got {type(config).__name__}")
    world = bucket_world((1, 2, 4), per_bucket=config.per_bucket, seed=seed)
    tok = world_tokenizer(world)
    corpus = build_corpus(world, seed=seed)

    torch.manual_seed(seed)
    gpt = models.tiny_gpt(tok)
    docs = tok(corpus[: config.batch_docs], add_special_tokens=False)["input_ids"]
    width = min(len(d) for d in docs) + 1
    ids = torch.tensor([[tok.eos_token_id, *d][:width] for d in docs])
    out = gpt(input_ids=ids, labels=ids)
    unshifted = token_nll(out.logits, ids)  # off by one: each position scored on the token it already sees
    causal = LossCheck(causal_lm_loss(out.logits, ids).item(), out.loss.item(), unshifted.item())

    pairs = nsp_batch(corpus, tok, n_pairs=config.batch_docs, seed=seed)
    specials = {tok.pad_token_id, tok.cls_token_id, tok.sep_token_id}
    generator = torch.Generator().manual_seed(seed)
    corrupted, mlm_labels = mask_for_mlm(
        pairs["input_ids"], mask_id=tok.mask_token_id, vocab_size=len(tok), special_ids=specials, generator=generator
    )
    torch.manual_seed(seed)
    bert = models.tiny_bert_pretraining(tok)
    out = bert(
        input_ids=corrupted,
        token_type_ids=pairs["token_type_ids"],
        attention_mask=pairs["attention_mask"],
        labels=mlm_labels,
        next_sentence_label=pairs["next_sentence_label"],
    )
    by_hand = masked_lm_loss(out.prediction_logits, mlm_labels) + next_sentence_loss(
        out.seq_relationship_logits, pairs["next_sentence_label"]
    )
    source = source_vocabulary_sum_loss(out.prediction_logits[mlm_labels != IGNORE_INDEX])
    masked = LossCheck(by_hand.item(), out.loss.item(), source.item())
    real = pairs["attention_mask"].bool() & ~torch.isin(pairs["input_ids"], torch.tensor(sorted(specials)))
    selected_rate = (mlm_labels != IGNORE_INDEX).sum().item() / real.sum().item()

    torch.manual_seed(seed)
    classifier = models.tiny_bert_classifier(tok, num_labels=2)
    labels = pairs["next_sentence_label"]
    out = classifier(input_ids=pairs["input_ids"], attention_mask=pairs["attention_mask"], labels=labels)
    label_free = source_vocabulary_sum_loss(out.logits)  # sums over both classes: the label is never read
    classification = LossCheck(classification_loss(out.logits, labels).item(), out.loss.item(), label_free.item())

    table = source_formula_table(len(tok), tok.convert_tokens_to_ids("Lisbon"))
    return Run(world, tok, corpus, gpt, causal, masked, classification, selected_rate, table)
