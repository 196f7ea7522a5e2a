"""Train once, reuse: a cache of trained models keyed by everything that determines them (chapter 1).

Chapters 1 and 2.1 both need the tiny GPT trained on the exposure world. The first to run trains it and
stores weights (safetensors), the training history and the evaluation rows under a key that hashes the
world, the model and training configs and the library version; the second loads it. ``cache=False``
always trains. The directory is ``$HALLUC_CACHE`` or ``~/.cache/halluc-book``; ``make test`` points it at
a fresh folder so CI always trains.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_model, save_model

from .. import __version__
from . import distributed
from .train import TrainConfig, TrainResult, train

CACHE_ENV = "HALLUC_CACHE"


def cache_root() -> Path:
    """Where trained models are cached: ``$HALLUC_CACHE`` if set, else ``~/.cache/halluc-book``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "halluc-book")


def cache_key(parts: dict) -> str:
    """A short stable hash of ``parts`` (any JSON-able description) and the library version."""
    if not isinstance(parts, dict):
        raise TypeError(f"parts must be a dict describing the run; got {type(parts).__name__}")
    text = json.dumps({"parts": parts, "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _save(path: Path, model: torch.nn.Module, result: TrainResult, key_parts: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        save_model(model, str(tmp / "model.safetensors"))
        result.history.to_csv(tmp / "history.csv", index=False)
        result.evals.to_json(tmp / "evals.json", orient="records")
        meta = {
            "steps": result.steps,
            "seconds": result.seconds,
            "tokens": result.tokens,
            "finished": result.finished,
            "key": key_parts,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, default=str, indent=1))
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load(path: Path, model: torch.nn.Module) -> TrainResult:
    load_model(model, str(path / "model.safetensors"))
    meta = json.loads((path / "meta.json").read_text())
    evals_text = (path / "evals.json").read_text()
    evals = pd.DataFrame(json.loads(evals_text)) if evals_text.strip() not in ("", "[]") else pd.DataFrame()
    return TrainResult(
        history=pd.read_csv(path / "history.csv"),
        evals=evals,
        steps=meta["steps"],
        seconds=meta["seconds"],
        tokens=meta["tokens"],
        finished=meta["finished"],
    )


def train_cached(
    build_model: Callable[[], torch.nn.Module],
    batches,
    config: TrainConfig,
    *,
    key: dict,
    cache: bool = True,
    **train_kwargs,
) -> tuple[torch.nn.Module, TrainResult, bool]:
    """Build a model and train it with :func:`halluc_lib.core.train.train`, or load it if this exact run is cached.

    ``key`` must describe everything besides ``config`` that changes the result (world checksum, model
    sizes, evaluation). Returns ``(model, result, loaded_from_cache)``.
    """
    model = build_model()
    parts = {
        **key,
        "train": config.__dict__,
        "model": model.config.to_dict() if hasattr(model, "config") else None,
    }
    path = cache_root() / cache_key(parts)
    if cache and (path / "meta.json").exists():
        result = _load(path, model)  # weights land on the CPU; probes move the model where they run
        model.eval()
        return model, result, True
    result = train(model, batches, config, **train_kwargs)
    if result.finished and distributed.is_main():  # under torchrun, rank 0 alone writes the cache
        _save(path, model, result, parts)
    distributed.barrier()
    return model, result, False
