"""Fine-tuning a text classifier: the source's §5.2 script, corrected (chapter 6).

The source's script cannot run (see chapter 6.2 for each fault). This is the version that does, kept small
enough to read beside it:

* the data are a real :class:`TextDataset` of (text, label) pairs, split once;
* a ``torch.utils.data.DataLoader`` shuffles them (seeded) and groups them into batches of ``batch_size``;
* :func:`collate_batch` tokenizes a whole batch at once, padded to its longest sentence (not to 512), as
  tensors, with the labels added — so ``outputs.loss`` is the classification loss;
* training is the book's one loop (:func:`halluc_lib.core.train.train`): ``torch.optim.AdamW``, linear warmup then
  cosine decay, gradient clipping, and the device chosen once and passed down;
* evaluation reads ``outputs.logits`` and reports accuracy, macro-F1 and the confusion matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import confusion_matrix, f1_score
from torch.utils.data import DataLoader, Dataset
from transformers import PreTrainedTokenizerBase

from .recipes import Budget
from .runtime import Device, check_positive_int, model_device, resolve_device
from .train import TrainConfig, train


class TextDataset(Dataset):
    """(text, label) pairs from a frame with ``text`` and ``label`` columns (labels 0 … k−1)."""

    def __init__(self, frame: pd.DataFrame):
        missing = {"text", "label"} - set(frame.columns)
        if missing:
            raise ValueError(f"frame must have the columns 'text' and 'label'; missing {sorted(missing)}")
        self.texts = [str(t) for t in frame.text]
        self.labels = [int(y) for y in frame.label]

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, index: int) -> dict:
        return {"text": self.texts[index], "label": self.labels[index]}


def collate_batch(
    examples: list[dict], tokenizer: PreTrainedTokenizerBase, max_length: int = 128
) -> dict[str, torch.Tensor]:
    """Tokenize a list of examples as one batch: padded to the batch's longest sentence, truncated at
    ``max_length``, as tensors, with ``labels``."""
    batch = tokenizer(
        [e["text"] for e in examples], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    batch = dict(batch)
    batch["labels"] = torch.tensor([e["label"] for e in examples])
    return batch


def make_loader(
    frame: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    max_length=128,
):
    """A ``DataLoader`` over ``frame`` that yields tokenized batches (see :func:`collate_batch`)."""
    return DataLoader(
        TextDataset(frame),
        batch_size=check_positive_int("batch_size", batch_size),
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=partial(collate_batch, tokenizer=tokenizer, max_length=max_length),
    )


class LoaderBatches:
    """A ``DataLoader`` as a batch source for the book's training loop: epoch ``e`` is the loader's ``e``-th
    pass with its shuffle seeded by ``(seed, e)``, so a resumed run sees the batches an uninterrupted one would."""

    def __init__(
        self,
        frame: pd.DataFrame,
        tokenizer: PreTrainedTokenizerBase,
        *,
        batch_size: int,
        seed: int = 0,
        max_length: int = 128,
    ):
        self.loader = make_loader(
            frame, tokenizer, batch_size=batch_size, shuffle=True, seed=seed, max_length=max_length
        )
        self.seed = seed
        self._epoch, self._batches = None, []

    def batches_per_epoch(self) -> int:
        return len(self.loader)

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:
        if epoch != self._epoch:
            self.loader.generator.manual_seed(int(np.random.default_rng([self.seed, epoch]).integers(2**62)))
            self._epoch, self._batches = epoch, list(self.loader)
        return self._batches[index]


@dataclass(frozen=True)
class FineTuneConfig:
    """The fine-tuning recipe. The defaults suit a small pretrained BERT on a few hundred sentences."""

    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128

    def __post_init__(self):
        for name in ("epochs", "batch_size", "max_length"):
            check_positive_int(name, getattr(self, name))
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")


@torch.inference_mode()
def predict(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    *,
    batch_size: int = 128,
    device: Device = "auto",
    max_length=128,
):
    """``frame`` with ``predicted`` (the argmax of ``outputs.logits``), ``confidence`` (its probability) and
    ``correct``; the model is evaluated where ``device`` says and left there."""
    device = resolve_device(device)
    model.to(device).eval()
    predicted, confidence, losses = [], [], []
    loader = make_loader(frame, tokenizer, batch_size=batch_size, shuffle=False, max_length=max_length)
    for batch in loader:
        outputs = model(**{k: v.to(device) for k, v in batch.items()})
        probabilities = outputs.logits.float().softmax(-1)
        top = probabilities.max(-1)
        predicted.append(top.indices.cpu())
        confidence.append(top.values.cpu())
        losses.append(outputs.loss.float().item() * len(batch["labels"]))
    predicted = torch.cat(predicted).numpy()
    out = frame.assign(predicted=predicted, confidence=torch.cat(confidence).numpy())
    out["correct"] = out.predicted.to_numpy() == out.label.to_numpy()
    out.attrs["loss"] = sum(losses) / len(frame)
    return out


def scores(predictions: pd.DataFrame) -> dict[str, float]:
    """Accuracy, macro-F1 (the mean of the per-class F1, so a minority class counts as much as the majority)
    and the mean loss of a :func:`predict` result."""

    return {
        "accuracy": float(predictions.correct.mean()),
        "macro_f1": float(f1_score(predictions.label, predictions.predicted, average="macro", zero_division=0)),
        "loss": float(predictions.attrs.get("loss", np.nan)),
    }


def confusion(predictions: pd.DataFrame, labels=("negative", "positive")) -> pd.DataFrame:
    """The confusion matrix of a :func:`predict` result: rows the true class, columns the predicted one."""

    matrix = confusion_matrix(predictions.label, predictions.predicted, labels=range(len(labels)))
    return pd.DataFrame(matrix, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))


@dataclass
class FineTuneResult:
    """The fine-tuned model, its training and validation history, and the seconds the loop took."""

    model: torch.nn.Module
    history: pd.DataFrame  # training loss by step
    epochs: pd.DataFrame  # after each epoch: validation loss, accuracy and macro-F1
    seconds: float


def fine_tune(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train_frame: pd.DataFrame,
    config: FineTuneConfig = FineTuneConfig(),
    *,
    validation: pd.DataFrame | None = None,
    seed: int = 0,
    device: Device = "auto",
    progress: bool = False,
) -> FineTuneResult:
    """Fine-tune a sequence classifier (any ``transformers`` model that returns ``loss`` and ``logits``) on
    ``train_frame``, evaluating on ``validation`` after every epoch; the model is returned on the CPU."""

    if not isinstance(config, FineTuneConfig):
        raise TypeError(f"config must be a FineTuneConfig; got {type(config).__name__}")
    torch.manual_seed(seed)
    batches = LoaderBatches(
        train_frame, tokenizer, batch_size=config.batch_size, seed=seed, max_length=config.max_length
    )
    per_epoch = batches.batches_per_epoch()
    train_config = TrainConfig(
        steps=Budget(epochs=config.epochs).steps_for(per_epoch),
        lr=config.lr,
        weight_decay=config.weight_decay,
        warmup_fraction=config.warmup_fraction,
        log_every=per_epoch,
        eval_every=per_epoch if validation is not None else None,
        seed=seed,
    )

    def evaluate(trained, step):
        result = scores(predict(trained, tokenizer, validation, device=model_device(trained)))
        return {"epoch": step // per_epoch, **result}

    result = train(
        model,
        batches,
        train_config,
        device=device,
        eval_fn=evaluate if validation is not None else None,
        progress=progress,
    )
    return FineTuneResult(model.cpu().eval(), result.history, result.evals, result.seconds)
