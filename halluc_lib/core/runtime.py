"""Where and how an experiment runs: device, seeds, threads and the named scales.

Introduced in the preface ("How to use this book") and used by every chapter's ``parameters`` cell:
``settings = runtime.setup(seed=seed, scale=scale, device=device)``.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import __version__

#: The scales a chapter can run at. ``"quick"`` is sized for a 2-core laptop CPU (each page in
#: about two minutes); ``"full"`` is the size a reader with a GPU runs to see the effect sharply.
SCALES = ("quick", "full")

_DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")

#: What a ``device`` argument accepts everywhere in the library: ``"auto"`` (CUDA, then MPS, then the CPU), a
#: device name such as ``"cpu"`` or ``"cuda:0"``, or a ``torch.device``.
Device = str | torch.device


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of :data:`SCALES`, else raise a ``ValueError`` naming them."""
    if not isinstance(scale, str):
        raise TypeError(f"scale must be a string, one of {SCALES}; got {type(scale).__name__}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale!r}")
    return scale


def check_positive_int(name: str, value, *, allow_zero: bool = False) -> int:
    """Validate an integer size parameter and return it; the error names the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}; got {value}")
    return int(value)


def check_probability(name: str, value, *, open_low: bool = False, open_high: bool = False) -> float:
    """Validate a number in [0, 1] (optionally open at either end) and return it as a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number in [0, 1]; got {type(value).__name__}")
    v = float(value)
    low_ok = v > 0 if open_low else v >= 0
    high_ok = v < 1 if open_high else v <= 1
    if not (low_ok and high_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise ValueError(f"{name} must be in {interval}; got {value}")
    return v


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into the best available device (cuda, then mps, then cpu) and check explicit ones.

    Accepted: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``.
    Asking for an accelerator that is not there is an error, not a silent fall back to the CPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as {_DEVICE_KINDS}; got {type(device).__name__}")
    kind = device.split(":", 1)[0]
    if kind not in _DEVICE_KINDS or (":" in device and kind != "cuda"):
        raise ValueError(f"device must be one of {_DEVICE_KINDS} or 'cuda:N'; got {device!r}")
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available here; use 'auto' or 'cpu'")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but MPS is not available here; use 'auto' or 'cpu'")
    return torch.device(device)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device ``model``'s weights are on: where anything that only reads a trained model should run it."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise ValueError("model has no parameters, so it has no device") from None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators so a run repeats exactly on the CPU."""
    seed = check_positive_int("seed", seed, allow_zero=True)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default: every core this process may use) and return it."""
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = check_positive_int("threads", threads)
    torch.set_num_threads(threads)
    return threads


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype used on ``device``: bf16 on CUDA, none (full fp32) elsewhere."""
    return torch.bfloat16 if torch.device(device).type == "cuda" else None


@dataclass(frozen=True)
class RunSettings:
    """What a chapter run was asked for and what it got; recorded on the status page."""

    seed: int
    scale: str
    device: torch.device
    threads: int
    version: str = __version__
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since :func:`setup` was called."""
        return time.perf_counter() - self.started


def setup(seed: int = 0, scale: str = "quick", device: str = "auto", threads: int | None = None) -> RunSettings:
    """Validate a chapter's parameters, seed everything and choose the device, in one call."""
    check_scale(scale)
    dev = resolve_device(device)
    seed_everything(seed)
    n = set_threads(threads)
    return RunSettings(seed=int(seed), scale=scale, device=dev, threads=n)
