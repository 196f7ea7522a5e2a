"""Batch sources for the training loop: which examples go into step ``s`` is a pure function of the seed.

Introduced in chapter 1 with :mod:`halluc_lib.core.train`. Because batch ``(epoch, index)`` is recomputed from the
seed rather than drawn from a stateful iterator, a run resumed from a checkpoint at step ``s`` sees exactly
the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from .runtime import check_positive_int, check_probability

IGNORE_INDEX = -100  # label value that the transformers losses skip


class BatchSource(Protocol):
    """What :func:`halluc_lib.core.train.train` needs from data."""

    def batches_per_epoch(self) -> int: ...

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]: ...


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The random generator of one epoch: a pure function of (seed, epoch), so batch s is the same on resume."""
    return np.random.default_rng([seed, epoch])


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens of real text in a batch (padding excluded): the unit of throughput. A batch without
    ``input_ids`` (images, say) counts its examples."""
    if "input_ids" not in batch:
        return len(next(iter(batch.values())))
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    if "labels" in batch and batch["labels"].shape == batch["input_ids"].shape:
        return int((batch["labels"] != IGNORE_INDEX).sum())
    return int(batch["input_ids"].numel())


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Split example indices into batches of similar length, in random order (the classic bucketing sampler).

    Examples are shuffled, stably sorted by length (so order within a length is random), cut into
    consecutive batches of ``batch_size`` and the batches shuffled. Padding then only fills the gap between
    the shortest and longest example of a batch, which for near-uniform documents is almost nothing.
    """
    batch_size = check_positive_int("batch_size", batch_size)
    order = rng.permutation(len(lengths))
    order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_right(
    documents: Sequence[Sequence[int]], pad_id: int, unlabelled: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token lists to the longest; labels are ``IGNORE_INDEX`` on padding and on the first
    ``unlabelled[r]`` tokens of row ``r`` (a context the model reads but is not trained to predict).

    Under causal attention no real token can attend to a later pad, so right-padded causal-LM batches need
    no attention mask — and without one, PyTorch's fused causal attention kernel can be used.
    """
    width = max(len(d) for d in documents)
    ids = np.full((len(documents), width), pad_id, dtype=np.int64)
    labels = np.full((len(documents), width), IGNORE_INDEX, dtype=np.int64)
    for r, doc in enumerate(documents):
        ids[r, : len(doc)] = doc
        labels[r, : len(doc)] = doc
        if unlabelled is not None:
            labels[r, : unlabelled[r]] = IGNORE_INDEX
    return ids, labels


class LMBatches:
    """Causal-LM batches of whole documents, each starting with the separator token, grouped by length.

    ``context_lengths[i]`` (default 0) leading tokens of document ``i`` are context: the model reads them but
    the loss skips them, as in instruction or reading-comprehension fine-tuning (chapter 4.3).
    """

    def __init__(
        self,
        documents: Sequence[Sequence[int]],
        *,
        batch_size: int,
        eos_id: int,
        seed: int = 0,
        context_lengths: Sequence[int] | None = None,
    ):
        if len(documents) == 0:
            raise ValueError("documents must not be empty")
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.documents = [[eos_id, *d] for d in documents]
        if context_lengths is None:
            context_lengths = [0] * len(documents)
        if len(context_lengths) != len(documents):
            raise ValueError(
                f"context_lengths must have one entry per document ({len(documents)}); got {len(context_lengths)}"
            )
        if any(not 0 <= c <= len(d) for c, d in zip(context_lengths, documents, strict=True)):
            raise ValueError("context_lengths must each lie between 0 and their document's length")
        context = np.asarray(context_lengths, dtype=np.int64)
        self.unlabelled = np.where(context > 0, context + 1, 0)  # the separator's label is never used anyway
        self.lengths = np.array([len(d) for d in self.documents])
        self.eos_id, self.seed = eos_id, seed
        self._cache: tuple[int, list[np.ndarray]] | None = None

    @classmethod
    def from_texts(cls, texts: Sequence[str], tokenizer: PreTrainedTokenizerBase, **kwargs) -> LMBatches:
        """Tokenize ``texts`` (no special tokens added) and batch them."""
        docs = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return cls(docs, eos_id=tokenizer.eos_token_id, **kwargs)

    @classmethod
    def from_contexts_and_targets(
        cls, contexts: Sequence[str], targets: Sequence[str], tokenizer: PreTrainedTokenizerBase, **kwargs
    ) -> LMBatches:
        """Documents ``context + " " + target`` whose loss covers the target only."""
        if len(contexts) != len(targets):
            raise ValueError(f"contexts and targets must be equally long; got {len(contexts)} and {len(targets)}")
        ctx = tokenizer(list(contexts), add_special_tokens=False)["input_ids"]
        tgt = tokenizer(list(targets), add_special_tokens=False)["input_ids"]
        docs = [c + t for c, t in zip(ctx, tgt, strict=True)]
        return cls(docs, eos_id=tokenizer.eos_token_id, context_lengths=[len(c) for c in ctx], **kwargs)

    def batches_per_epoch(self) -> int:
        return -(-len(self.documents) // self.batch_size)

    def n_tokens(self) -> int:
        """Tokens per epoch, the document separators included."""
        return int(self.lengths.sum())

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (
                epoch,
                length_grouped_batches(self.lengths, self.batch_size, epoch_rng(self.seed, epoch)),
            )
        rows = self._cache[1][index]
        # Pad with the separator rather than <pad>: labels mask it anyway, and a <pad> id in the inputs
        # makes transformers warn about a missing attention mask, which right padding does not need.
        ids, labels = pad_right([self.documents[i] for i in rows], self.eos_id, self.unlabelled[rows])
        return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(labels)}


class TensorBatches:
    """Batches from a dict of equally long tensors (e.g. ``input_ids``, ``attention_mask``, ``labels``),
    reshuffled every epoch; the last incomplete batch of an epoch is dropped so every step has the same size."""

    def __init__(self, tensors: dict[str, torch.Tensor], *, batch_size: int, seed: int = 0):
        if not tensors:
            raise ValueError("tensors must hold at least one named tensor")
        lengths = {k: len(v) for k, v in tensors.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"tensors must all have the same length; got {lengths}")
        self.n = next(iter(lengths.values()))
        self.batch_size = check_positive_int("batch_size", batch_size)
        if self.batch_size > self.n:
            raise ValueError(f"batch_size must be <= the number of examples ({self.n}); got {batch_size}")
        self.tensors, self.seed = tensors, seed
        self._cache: tuple[int, np.ndarray] | None = None  # (epoch, its rows): drawn once per epoch

    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """The examples of ``epoch`` in the order its batches take them: a permutation drawn from (seed, epoch)."""
        return epoch_rng(self.seed, epoch).permutation(self.n)

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:
        # Drawn once per epoch, not per step: permuting a large set every step cost more than the step itself
        # (chapter 5.3's click log).
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self.epoch_rows(epoch))
        rows = torch.from_numpy(self._cache[1][index * self.batch_size : (index + 1) * self.batch_size])
        return {k: v[rows] for k, v in self.tensors.items()}


class MLMBatches:
    """Masked-LM batches from equally long sentences (chapter 5.1): BERT's corruption drawn afresh for every
    batch, from a generator seeded by (seed, epoch, index), so a run repeats exactly."""

    def __init__(
        self,
        input_ids: torch.Tensor,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int,
        probability: float = 0.15,
        seed: int = 0,
    ):
        self.rows = TensorBatches({"input_ids": input_ids}, batch_size=batch_size, seed=seed)
        self.mask_id, self.vocab_size = tokenizer.mask_token_id, len(tokenizer)
        self.special = set(tokenizer.all_special_ids)
        self.probability, self.seed = check_probability("probability", probability, open_low=True), seed

    def batches_per_epoch(self) -> int:
        return self.rows.batches_per_epoch()

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:

        ids = self.rows.batch(epoch, index)["input_ids"]
        state = np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(state))
        corrupted, labels = mask_for_mlm(
            ids,
            mask_id=self.mask_id,
            vocab_size=self.vocab_size,
            special_ids=self.special,
            probability=self.probability,
            generator=generator,
        )
        return {"input_ids": corrupted, "labels": labels}


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
