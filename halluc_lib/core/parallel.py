"""Independent trainings side by side, each in its own process on one CPU thread.

Why: the book's models are so small that a second thread speeds one training up by only 15–35% on a 2-core
machine (a matrix of 48×30 tokens by 128 columns is too small to split well, and most of a step is many such
small operations), while two trainings with one thread each run side by side at nearly their one-thread speed.
So when a page trains several models that do not depend on each other — one per corpus, one per variant —
:func:`side_by_side` runs them at once: on 2 cores, two medicine GPTs trained in 6.5 s instead of 8.6–9.2 s one
after the other (chapter 5.2's pair, 150 steps each).

How: every job is a function without arguments. On the CPU each runs in a process forked from this one (it
inherits the data and the functions, so nothing is copied on the way in), with one intra-op thread, and sends
its result back serialised with ``torch.save``. One process per job, even beyond the number of cores: a
one-thread process waits for nothing, so the operating system's time-slicing keeps every core busy.

What a job must do: seed whatever it draws at random (every training here does: ``torch.manual_seed(seed)`` right
before a model is built), since a forked process starts from the generator's state at the fork, not from where
the job before it left it. A forked process cannot draw in the notebook, so :func:`in_worker` tells the training
loop to draw no progress bar there; a job run here (one after another) draws its bar as usual.

What stays the same: a job's result depends only on the job. It always trains with one thread, whether it ran in a
forked process, alone, or one after another (:func:`run_one_by_one`), so the number of cores never changes what a
job computes — the test checks that the weights are identical bit for bit. (A second thread would: it splits some
sums differently, and the weights after 60 steps differed by up to 0.02.) Off Linux (Windows has no ``fork``, and
macOS's system libraries are not safe in a forked process), on a GPU (the jobs share one device, so they run one
after another with the threads as they are), and under ``torchrun`` (every rank must train the same model at the
same time), the jobs run one after another in this process.
"""

from __future__ import annotations

import io
import multiprocessing
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager

import torch

from . import distributed
from .runtime import Device, resolve_device, set_threads

# the jobs of the current side_by_side call: a forked process finds its job here by index, inherited with the
# parent's memory, so a job may be any function (a closure, a lambda) without being picklable
_JOBS: Sequence[Callable[[], object]] = ()


def in_worker() -> bool:
    """Whether this process is a worker of :func:`side_by_side` (the pool's processes are daemons): it can neither
    draw in the notebook nor start workers of its own."""
    return multiprocessing.current_process().daemon


@contextmanager
def one_thread():
    """Run the block with one intra-op thread, then restore the thread count."""
    before = torch.get_num_threads()
    set_threads(1)
    try:
        yield
    finally:
        set_threads(before)


def run_one_by_one(jobs: Sequence[Callable[[], object]]) -> list:
    """Each job in this process, one after another, with one intra-op thread: the results of
    :func:`side_by_side` on the CPU, without its processes."""
    with one_thread():
        return [job() for job in jobs]


def _run_job(index: int) -> bytes:
    set_threads(1)
    buffer = io.BytesIO()
    torch.save(_JOBS[index](), buffer)
    return buffer.getvalue()


def _can_fork() -> bool:
    """Linux only: macOS has ``fork`` too, but its system libraries are not safe to use in a process forked after
    they have started (Python itself starts processes with ``spawn`` there), and Windows has none."""
    return sys.platform.startswith("linux")


def side_by_side(jobs: Sequence[Callable[[], object]], *, device: Device = "auto") -> list:
    """The results of ``jobs`` (functions without arguments, each training on ``device``), in order, computed
    side by side where that is possible (see the module's docstring).

    A job's exception is raised here, with the job's own traceback as its cause.
    """
    global _JOBS
    jobs = list(jobs)
    if not all(callable(job) for job in jobs):
        raise TypeError("jobs must be functions without arguments")
    if not jobs:
        return []
    if resolve_device(device).type != "cpu" or distributed.world_size() > 1:
        return [job() for job in jobs]
    if len(jobs) == 1 or not _can_fork() or in_worker():  # a job's own jobs: here
        return run_one_by_one(jobs)
    _JOBS = jobs
    try:
        with multiprocessing.get_context("fork").Pool(len(jobs)) as pool:
            payloads = pool.map(_run_job, range(len(jobs)), chunksize=1)
    finally:
        _JOBS = ()
    return [torch.load(io.BytesIO(p), weights_only=False) for p in payloads]
