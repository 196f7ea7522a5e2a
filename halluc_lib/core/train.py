"""The one training loop every chapter uses (introduced in chapter 1).

What it does, and why:

* AdamW with weight decay on matrices only, linear warmup then cosine decay, gradient-norm clipping: the
  standard recipe for transformers, so results transfer to real models.
* bf16 autocast where the hardware multiplies bf16 natively (CUDA; CPUs with AVX-512 BF16 or AMX), fp32
  elsewhere (``TrainConfig.precision``). On such a CPU a training step of the book's tiny models runs about
  twice as fast in bf16, with the attention computed by plain matrix products (transformers' "eager"
  attention): SDPA's CPU kernel is slower than them for heads this small. Either way a run is deterministic
  for a fixed seed on a given machine.
* No host synchronisation inside a step: the loss is accumulated on the device and read every
  ``log_every`` steps, so a GPU is never stalled waiting for Python.
* The batch of step ``s`` is a pure function of the seed (see :mod:`halluc_lib.core.batching`), and checkpoints
  hold the weights (safetensors), optimizer and scheduler state, step and RNG state, written atomically. A run
  stopped by a step or time budget and resumed from its checkpoint ends with the same weights as one that ran
  straight through. Nothing is loaded with pickle: ``torch.load(..., weights_only=True)`` only.
* The same call runs unchanged under ``torchrun --nproc-per-node N`` (:mod:`halluc_lib.core.distributed`):
  each rank trains on its share of the global batch under ``DistributedDataParallel``, and rank 0 alone shows
  progress, evaluates and writes checkpoints; every rank gets the same result back.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd
import torch
from safetensors.torch import load_model, save_model
from torch.nn.parallel import DistributedDataParallel
from tqdm import std

from . import distributed, parallel
from .batching import BatchSource, count_tokens
from .files import atomic_write_text
from .runtime import Device, autocast_dtype, check_positive_int, check_precision, resolve_device


class Tracker(Protocol):
    """Where a run's rows go as they are made (:mod:`halluc_lib.core.tracking`)."""

    def log(self, rows: list[dict], step: int, prefix: str) -> None: ...

    def close(self) -> None: ...


EvalFn = Callable[[torch.nn.Module, int], "pd.DataFrame | list[dict] | dict"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run besides the model and the data."""

    steps: int
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    log_every: int = 50
    eval_every: int | None = None
    checkpoint_every: int | None = None
    seed: int = 0
    precision: str = "auto"

    def __post_init__(self):
        check_positive_int("steps", self.steps)
        check_positive_int("log_every", self.log_every)
        for name in ("eval_every", "checkpoint_every"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number; got {self.lr!r}")
        if not (isinstance(self.grad_clip, (int, float)) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a positive number; got {self.grad_clip!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1); got {self.warmup_fraction!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must be in [0, 1]; got {self.min_lr_ratio!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0; got {self.weight_decay!r}")
        check_precision(self.precision)


@dataclass
class TrainResult:
    """What a run produced: per-log training rows, per-evaluation rows, and how fast it went."""

    history: pd.DataFrame
    evals: pd.DataFrame
    steps: int
    seconds: float
    tokens: int
    finished: bool

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def lr_multiplier(step: int, config: TrainConfig) -> float:
    """Linear warmup to 1, then cosine decay to ``min_lr_ratio`` at ``config.steps``."""
    warmup = int(config.warmup_fraction * config.steps)
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, config.steps - warmup)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine


def make_optimizer(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decay on weight matrices only (not biases, norms); the fused kernel where torch has one."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    try:
        return torch.optim.AdamW(groups, lr=config.lr, fused=device.type in ("cuda", "cpu"))
    except (RuntimeError, TypeError):  # pragma: no cover - older torch without a fused kernel here
        return torch.optim.AdamW(groups, lr=config.lr)


def _progress_bar(total: int, initial: int, enabled: bool):
    """A tqdm bar that renders as a widget in Jupyter when ipywidgets is there, as text otherwise; none in a
    worker of :func:`halluc_lib.core.parallel.side_by_side`, which cannot draw in the notebook."""
    enabled = enabled and not parallel.in_worker()
    bar_cls = std.tqdm
    try:  # IPython and ipywidgets exist only in a notebook kernel: optional dependencies, imported when needed
        from IPython import get_ipython

        if get_ipython() is not None and type(get_ipython()).__name__ == "ZMQInteractiveShell":
            # optional: the widget bar needs ipywidgets, which only a notebook kernel has
            import ipywidgets  # noqa: F401
            from tqdm.notebook import tqdm as bar_cls  # type: ignore[no-redef]  # optional, as above
    except ImportError:
        pass
    return bar_cls(total=total, initial=initial, disable=not enabled, desc="train", unit="step")


@contextmanager
def attention_for(model: torch.nn.Module, device: torch.device, amp: torch.dtype | None):
    """Train in bf16 on the CPU with transformers' "eager" attention, restoring each model's own choice afterwards.

    At the book's sizes (heads 16–32 wide, sequences under 128 tokens) plain matrix products beat SDPA's CPU
    kernel in bf16: a tiny GPT's step took 29 ms against 52 ms. In fp32 SDPA is as fast or faster (chapter 4.2's
    padded sentence classifiers ran slower with eager attention), and on a GPU its fused kernels win, so nothing
    changes there.
    """
    switched = []
    if device.type == "cpu" and amp is not None:
        for module in model.modules():
            config = getattr(module, "config", None)
            if hasattr(module, "set_attn_implementation") and getattr(config, "_attn_implementation", None) == "sdpa":
                module.set_attn_implementation("eager")
                switched.append(module)
    try:
        yield
    finally:
        for module in switched:
            module.set_attn_implementation("sdpa")


def _as_rows(result, step: int) -> list[dict]:
    if result is None:
        return []
    if isinstance(result, pd.DataFrame):
        rows = result.to_dict("records")
    elif isinstance(result, dict):
        rows = [result]
    else:
        rows = list(result)
    return [{"step": step, **r} for r in rows]


# ---------------------------------------------------------------------------------------------------------
# Checkpoints


def _config_key(config: TrainConfig) -> dict:
    """The parts of the config a resumed run must share with the run that wrote the checkpoint."""
    d = asdict(config)
    for k in ("log_every", "eval_every", "checkpoint_every"):
        d.pop(k)
    return d


def save_checkpoint(directory: Path, model: torch.nn.Module, optimizer, scheduler, state: dict, keep: int = 2) -> Path:
    """Write ``step-XXXXXXX/`` (weights, optimizer, scheduler, RNG, state) atomically and point ``latest`` at it."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:07d}"
    tmp = directory / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    extra = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "cpu_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        extra["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(extra, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    final = directory / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write_text(directory / "latest", name)
    for old in sorted(directory.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(directory: str | os.PathLike | None) -> Path | None:
    """The checkpoint ``latest`` points at, or ``None`` if there is none."""
    if directory is None:
        return None
    pointer = Path(directory) / "latest"
    if not pointer.exists():
        return None
    path = Path(directory) / pointer.read_text().strip()
    return path if (path / "state.json").exists() else None


def _load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler, device: Device) -> dict:
    load_model(model, str(path / "model.safetensors"), device=str(device))
    extra = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
    optimizer.load_state_dict(extra["optimizer"])
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["cpu_rng"].cpu())
    if "cuda_rng" in extra and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in extra["cuda_rng"]])
    return json.loads((path / "state.json").read_text())


# ---------------------------------------------------------------------------------------------------------
# The loop


def train(
    model: torch.nn.Module,
    batches: BatchSource,
    config: TrainConfig,
    *,
    device: str | torch.device = "auto",
    eval_fn: EvalFn | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    budget_steps: int | None = None,
    budget_seconds: float | None = None,
    progress: bool = True,
    tracker: Tracker | None = None,
) -> TrainResult:
    """Train ``model`` on ``batches`` for ``config.steps`` steps (or until a budget runs out).

    ``eval_fn(model, step)`` is called every ``config.eval_every`` steps and at the end, in eval mode without
    gradients; its rows (a DataFrame, a dict or a list of dicts) come back in ``result.evals`` with a
    ``step`` column. With ``checkpoint_dir``, a checkpoint is written every ``config.checkpoint_every`` steps
    and whenever a budget stops the run; with ``resume=True`` an existing checkpoint there is continued.
    With a ``tracker`` (:mod:`halluc_lib.core.tracking`: TensorBoard, Weights & Biases), rank 0 hands it every
    training row and evaluation row as it is made, and closes it at the end.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig; got {type(config).__name__}")
    if budget_steps is not None:
        check_positive_int("budget_steps", budget_steps)
    if budget_seconds is not None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds must be a positive number; got {budget_seconds!r}")
    per_epoch = batches.batches_per_epoch()
    if per_epoch < 1:
        raise ValueError("batches must yield at least one batch per epoch")
    device = resolve_device(device)
    model.to(device)
    rank, ranks = distributed.rank(), distributed.world_size()
    main = rank == 0
    # several ranks: DDP broadcasts rank 0's weights now and averages the gradients in every backward pass
    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if ranks > 1
        else model
    )
    optimizer = make_optimizer(model, config, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_multiplier(s, config))
    amp = autocast_dtype(device, config.precision)

    step, tokens, seconds = 0, 0, 0.0
    history: list[dict] = []
    evals: list[dict] = []
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    found = latest_checkpoint(ckpt_dir) if resume else None
    if found is not None:
        state = _load_checkpoint(found, model, optimizer, scheduler, device)
        if state["config"] != _config_key(config):
            raise ValueError(
                f"checkpoint_dir: the checkpoint in {ckpt_dir} was written with a different config "
                f"({state['config']}); use another directory or resume=False"
            )
        step, tokens, seconds = state["step"], state["tokens"], state["seconds"]
        history, evals = state["history"], state["evals"]
        window = state["window"]
    else:
        window = [0.0, 0]

    def checkpoint():
        if ckpt_dir is not None and main:
            state = {
                "step": step,
                "tokens": tokens,
                "seconds": seconds,
                "config": _config_key(config),
                "history": history,
                "evals": evals,
                # the part of the current logging window already trained, so a resumed run logs the same means
                "window": [loss_sum.item(), loss_count],
            }
            save_checkpoint(ckpt_dir, model, optimizer, scheduler, state)
        distributed.barrier()  # no rank goes on (or resumes) before the checkpoint is complete

    def evaluate():
        if main and eval_fn is not None and not (evals and evals[-1]["step"] == step):
            model.eval()
            with torch.inference_mode():
                rows = _as_rows(eval_fn(model, step), step)
                evals.extend(rows)
                if tracker is not None:
                    tracker.log(rows, step, "eval")

    # the tracker is closed (its files flushed) however the run ends; the model gets its own attention back
    with ExitStack() as cleanup:
        if tracker is not None and main:
            cleanup.callback(tracker.close)
        cleanup.enter_context(attention_for(model, device, amp))
        if step == 0 and config.eval_every:
            evaluate()
        model.train()
        start_step, t0 = step, time.perf_counter()
        loss_sum = torch.tensor(window[0], device=device)
        loss_count = window[1]
        bar = _progress_bar(config.steps, step, progress and main)
        stopped_by_budget = False
        while step < config.steps:
            epoch, index = divmod(step, per_epoch)
            batch = batches.batch(epoch, index)
            tokens += count_tokens(batch)  # the global batch's: the same on every rank
            batch, weight = distributed.shard(batch, rank, ranks)
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = net(**batch).loss
            (loss * weight if ranks > 1 else loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            loss_sum += loss.detach()
            loss_count += 1
            step += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                mean_loss = distributed.mean_over_ranks(
                    loss_sum / loss_count
                ).item()  # the one sync, every log_every steps
                history.append(
                    {"step": step, "epoch": step / per_epoch, "loss": mean_loss, "lr": scheduler.get_last_lr()[0]}
                )
                if tracker is not None and main:
                    tracker.log(history[-1:], step, "train")
                bar.set_postfix(loss=f"{mean_loss:.3f}")
                loss_sum.zero_()
                loss_count = 0
            if config.eval_every and step % config.eval_every == 0 and step < config.steps:
                seconds += time.perf_counter() - t0
                evaluate()
                model.train()
                t0 = time.perf_counter()
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                checkpoint()
            out_of_steps = budget_steps is not None and step - start_step >= budget_steps
            out_of_time = budget_seconds is not None and seconds + time.perf_counter() - t0 >= budget_seconds
            if budget_seconds is not None and ranks > 1:
                out_of_time = distributed.broadcast_object(out_of_time)  # rank 0's clock decides for all
            if (out_of_steps or out_of_time) and step < config.steps:
                stopped_by_budget = True
                break
        bar.close()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        if not stopped_by_budget:
            evaluate()
        checkpoint()
    model.eval()
    if ranks > 1:  # only rank 0 evaluated: every rank returns its rows
        history, evals = distributed.broadcast_object((history, evals))
    return TrainResult(
        history=pd.DataFrame(history, columns=["step", "epoch", "loss", "lr"]),
        evals=pd.DataFrame(evals),
        steps=step,
        seconds=seconds,
        tokens=tokens,
        finished=step >= config.steps,
    )
