"""One way to set up a training run: a model size, a budget, and :func:`train_lm` / :func:`train_classifier`.

Every page trains its models the same way — seed, build the model at the page's size, batch the data, run
:func:`halluc_lib.core.train.train`, time it through :class:`~halluc_lib.core.train.TrainResult` — so the
set-up is written here once. A model that a later page reuses is cached by a hash of everything that
determines it (:mod:`halluc_lib.core.cache`): a page that reuses an earlier page's model calls the same
recipe with the same configuration and gets it back from the cache, or trains it when run alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from . import models
from .batching import BatchSource, LMBatches, MLMBatches, TensorBatches
from .cache import train_cached
from .classify import model_inputs
from .runtime import Device, check_positive_int, check_scale
from .train import EvalFn, TrainConfig, TrainResult, train


@dataclass(frozen=True)
class ModelSize:
    """Depth, width and heads of a tiny transformer; ``for_scale`` gives the book's two sizes."""

    n_layer: int = 2
    width: int = 128
    n_head: int = 4

    def __post_init__(self):
        for name in ("n_layer", "width", "n_head"):
            check_positive_int(name, getattr(self, name))
        if self.width % self.n_head:
            raise ValueError(f"width must be a multiple of n_head; got width={self.width}, n_head={self.n_head}")

    @classmethod
    def for_scale(cls, scale: str = "quick") -> ModelSize:
        """``"quick"``: 2 layers, 128 wide, 4 heads (minutes on a CPU); ``"full"``: 4 layers, 256 wide, 8 heads."""
        return cls() if check_scale(scale) == "quick" else cls(n_layer=4, width=256, n_head=8)

    def gpt(self, tokenizer: PreTrainedTokenizerBase, **options) -> torch.nn.Module:
        """A fresh tiny GPT of this size (:func:`halluc_lib.core.models.tiny_gpt`)."""
        return models.tiny_gpt(tokenizer, n_layer=self.n_layer, n_embd=self.width, n_head=self.n_head, **options)

    def bert_mlm(self, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
        """A fresh tiny BERT masked LM of this size."""
        return models.tiny_bert_mlm(tokenizer, n_layer=self.n_layer, hidden=self.width, n_head=self.n_head)

    def bert_classifier(self, tokenizer: PreTrainedTokenizerBase, num_labels: int = 2) -> torch.nn.Module:
        """A fresh tiny BERT sequence classifier of this size."""
        return models.tiny_bert_classifier(
            tokenizer, num_labels, n_layer=self.n_layer, hidden=self.width, n_head=self.n_head
        )


@dataclass(frozen=True)
class Budget:
    """How long to train: a number of ``steps``, or of ``epochs`` (passes over the data), never both.

    ``steps_for`` is the one place where passes become steps: ``round(epochs × batches per epoch)``, at
    least one.
    """

    steps: int | None = None
    epochs: float | None = None

    def __post_init__(self):
        if (self.steps is None) == (self.epochs is None):
            raise ValueError(f"give exactly one of steps and epochs; got steps={self.steps!r}, epochs={self.epochs!r}")
        if self.steps is not None:
            check_positive_int("steps", self.steps)
        elif not (isinstance(self.epochs, (int, float)) and math.isfinite(self.epochs) and self.epochs > 0):
            raise ValueError(f"epochs must be a positive number; got {self.epochs!r}")

    def steps_for(self, batches_per_epoch: int) -> int:
        """Steps this budget buys when an epoch is ``batches_per_epoch`` batches."""
        if self.steps is not None:
            return self.steps
        check_positive_int("batches_per_epoch", batches_per_epoch)
        return max(1, round(self.epochs * batches_per_epoch))


@dataclass
class Trained:
    """A trained model, how its training went, and whether it came from the cache."""

    model: torch.nn.Module
    result: TrainResult
    from_cache: bool = False


def _budget(budget: Budget | int) -> Budget:
    if isinstance(budget, Budget):
        return budget
    if isinstance(budget, int) and not isinstance(budget, bool):
        return Budget(steps=budget)
    raise TypeError(f"budget must be a Budget or a number of steps; got {budget!r}")


def train_lm(
    texts: list[str],
    tokenizer: PreTrainedTokenizerBase,
    size: ModelSize,
    budget: Budget | int,
    *,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: Device = "auto",
    n_positions: int | None = None,
    eval_fn: EvalFn | None = None,
    eval_every: int | None = None,
    cache_key: dict | None = None,
    progress: bool = True,
    **train_options,
) -> Trained:
    """Pretrain a fresh tiny GPT of ``size`` on ``texts`` (documents) for ``budget``, with the one loop.

    The model is built right after ``torch.manual_seed(seed)``, so a seed gives the same initial weights on
    every page. With ``cache_key`` (a dict naming the experiment and anything besides these arguments that
    changes the result, e.g. the world's checksum), the trained model is cached and a later call with the same
    arguments loads it instead of training. ``train_options`` go to :class:`~halluc_lib.core.train.TrainConfig`.
    """
    batches = LMBatches.from_texts(texts, tokenizer, batch_size=batch_size, seed=seed)
    options = {"n_positions": n_positions} if n_positions is not None else {}

    def build():
        torch.manual_seed(seed)
        return size.gpt(tokenizer, **options)

    return _fit(build, batches, budget, lr, seed, device, eval_fn, eval_every, cache_key, progress, train_options)


def train_mlm(
    input_ids: torch.Tensor,
    tokenizer: PreTrainedTokenizerBase,
    size: ModelSize,
    budget: Budget | int,
    *,
    mask_probability: float = 0.15,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: Device = "auto",
    cache_key: dict | None = None,
    progress: bool = True,
    **train_options,
) -> Trained:
    """Pretrain a fresh tiny BERT masked LM of ``size`` on rows of token ids (BERT's corruption at
    ``mask_probability``, :func:`~halluc_lib.core.batching.mask_for_mlm`), with the one loop; cached like
    :func:`train_lm` when ``cache_key`` is given."""
    batches = MLMBatches(input_ids, tokenizer, batch_size=batch_size, probability=mask_probability, seed=seed)

    def build():
        torch.manual_seed(seed)
        return size.bert_mlm(tokenizer)

    return _fit(build, batches, budget, lr, seed, device, None, None, cache_key, progress, train_options)


#: The classifiers' precision: bf16 on a GPU, fp32 on every CPU. Their matrices (64–128 wide, batches of 32–64
#: short rows) are too small for a CPU's bf16 to pay for autocast's casts — no classifier page ran faster in bf16
#: (chapter 2.3's: 16 s, against 13 s in fp32 in the sweep before; not a paired measurement) — and their
#: measurements moved: at seed 0, in bf16, chapter 4.5's label filter worsened calibration threefold instead of
#: halving it.
CLASSIFIER_PRECISION = "cuda-bf16"


def train_classifier(
    build_model: Callable[[], torch.nn.Module],
    data: dict[str, torch.Tensor],
    budget: Budget | int,
    *,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: Device = "auto",
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
    progress: bool = False,
    precision: str = CLASSIFIER_PRECISION,
    **train_options,
) -> Trained:
    """Train the classifier that ``build_model()`` returns on ``data`` (inputs, ``labels`` and bookkeeping).

    ``torch.manual_seed(seed)`` runs just before ``build_model()``. ``wrap`` turns the model into the module
    the loop trains (e.g. an adversarial loss around it, chapter 4.2); the model itself is returned, on the CPU
    and in eval mode. ``precision``: :data:`CLASSIFIER_PRECISION` unless given.
    """
    torch.manual_seed(seed)
    model = build_model()
    trained = wrap(model) if wrap is not None else model
    tensors = model_inputs(data) | {"labels": data["labels"]}
    batches = TensorBatches(tensors, batch_size=batch_size, seed=seed)
    steps = _budget(budget).steps_for(batches.batches_per_epoch())
    config = TrainConfig(steps=steps, lr=lr, seed=seed, precision=precision, **train_options)
    result = train(trained, batches, config, device=device, progress=progress)
    return Trained(model.to("cpu").eval(), result)


#: The tiny BERT of the sentence-classification pages (chapters 2.3, 4.2 and 4.5).
TEXT_CLASSIFIER = ModelSize(n_layer=2, width=64, n_head=4)


def train_text_classifier(
    tokenizer: PreTrainedTokenizerBase,
    data: dict[str, torch.Tensor],
    budget: Budget | int,
    *,
    seed: int = 0,
    device: Device = "auto",
    batch_size: int = 64,
    lr: float = 3e-3,
    start_from: torch.nn.Module | None = None,
    wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None,
) -> Trained:
    """A :data:`TEXT_CLASSIFIER` trained on encoded sentences (two labels), returned on the CPU in eval mode.

    ``start_from`` (a trained classifier, left unchanged) makes this fine-tuning from its weights; ``wrap``
    as in :func:`train_classifier`.
    """

    def build():
        model = TEXT_CLASSIFIER.bert_classifier(tokenizer, 2)
        if start_from is not None:
            model.load_state_dict(start_from.state_dict())
        return model

    return train_classifier(build, data, budget, batch_size=batch_size, lr=lr, seed=seed, device=device, wrap=wrap)


def _fit(
    build, batches: BatchSource, budget, lr, seed, device: Device, eval_fn, eval_every, cache_key, progress, options
):
    steps = _budget(budget).steps_for(batches.batches_per_epoch())
    config = TrainConfig(steps=steps, lr=lr, eval_every=eval_every, seed=seed, **options)
    if cache_key is None:
        model = build()
        result = train(model, batches, config, device=device, eval_fn=eval_fn, progress=progress)
        return Trained(model, result)
    model, result, from_cache = train_cached(
        build, batches, config, key=cache_key, device=device, eval_fn=eval_fn, progress=progress
    )
    return Trained(model, result, from_cache)
