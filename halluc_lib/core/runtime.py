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


def check_shares(name: str, shares) -> tuple[float, ...]:
    """Validate a non-empty sequence of shares, each in [0, 1], and return it as a tuple of floats."""
    if isinstance(shares, (str, bytes)) or not hasattr(shares, "__iter__"):
        raise TypeError(f"{name} must be a sequence of numbers in [0, 1]; got {type(shares).__name__}")
    shares = tuple(shares)
    if not shares:
        raise ValueError(f"{name} must name at least one share")
    return tuple(check_probability(name, share) for share in shares)


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


#: What a training run's ``precision`` accepts: ``"auto"`` (bf16 autocast where the hardware multiplies bf16
#: natively — CUDA, and CPUs with AVX-512 BF16 or AMX — fp32 elsewhere), ``"cuda-bf16"`` (bf16 on CUDA only: for
#: models too small to gain from bf16 on a CPU), ``"fp32"`` or ``"bf16"`` (forced).
PRECISIONS = ("auto", "cuda-bf16", "fp32", "bf16")


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise a ``ValueError`` naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {precision!r}")
    return precision


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX tiles).

    There a bf16 matrix product runs two to four times faster than an fp32 one (measured on the book's 2-core
    machines: ~700 against ~170 GFLOP/s on one, ~360 against ~150 on another, an AMD EPYC with AVX-512
    BF16); on CPUs without it bf16 is emulated and slower than fp32. How fast the pages train follows the bf16
    figure, which ``make bench`` prints as the machine's matmul peak.
    """
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, but stable since torch 2.1
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The mixed-precision dtype training uses on ``device``: ``None`` means full fp32.

    ``"auto"``: bf16 on CUDA and on a CPU with native bf16 (:func:`cpu_has_native_bf16`), fp32 elsewhere (MPS,
    older CPUs); ``"cuda-bf16"``: bf16 on CUDA only; ``"fp32"`` and ``"bf16"`` force one. Weights, optimizer state
    and the loss stay fp32 either way.
    """
    kind = torch.device(device).type
    if check_precision(precision) == "fp32":
        return None
    if precision == "bf16" or kind == "cuda":
        return torch.bfloat16
    if precision == "auto" and kind == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


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
