"""Benchmark: the book's training loop against ``transformers.Trainer`` on the same model, data and budget.

Run ``python -m halluc_lib.tools.bench`` (or ``make bench``). Both train the chapter 2.1 tiny GPT from the same
initial weights on the same biographies, with the same batch size (in documents), number of steps, learning
rate schedule and optimizer, in one process, alternating A/B/A/B so that drift in machine speed hits both.
Throughput is counted in *real* tokens (padding excluded), so it measures useful work, not slots.

The Trainer is set up as a careful user would: length-grouped batches (``train_sampling_strategy=
"group_by_length"``), no attention mask where right padding makes none necessary (so the fused causal kernel
runs), no NaN/inf filter (which forces a host synchronisation every step), the same cosine schedule down to 10%
of the peak rate, the fused AdamW. Both models are built outside the timed regions; each side's set-up (batching,
``Trainer`` construction) is timed separately and reported. Both must reach the same mean training loss within
:data:`LOSS_TOLERANCE`, so neither is faster by doing less.

Both train in the same precision: bf16 autocast where the hardware multiplies bf16 natively (a GPU; a CPU with
AVX-512 BF16 or AMX), fp32 elsewhere (:func:`halluc_lib.core.runtime.autocast_dtype`; ``--precision`` forces one).
In bf16 on a CPU the book's loop computes attention with plain matrix products ("eager"), which beats SDPA's CPU
kernel for heads this small (:func:`halluc_lib.core.train.attention_for`); the Trainer runs the model as
transformers builds it (SDPA). So that the reader can see how much of the difference that choice makes, wherever
the book's loop makes it the Trainer is also run once more inside the same ``attention_for``.

Throughput alone does not travel between machines; the fraction of the machine's peak does. Each side's model
FLOP/s (:func:`training_flops`) is divided by the matmul peak measured in the same run, on the same device and
dtype (:func:`matmul_peak_flops`).

How much faster could the loop be? :func:`step_breakdown` profiles a short run of the book's loop
(``torch.profiler``, counting each operator's FLOPs) and splits its time: the matrix products, at what fraction
of the peak they run, and everything else (activations, normalisation, softmax, autocast's casts, the optimizer).
Matrix products already at the peak leave only the rest to win: the loop cannot be faster than its matrix products
alone, short of doing fewer FLOPs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from contextlib import nullcontext
from functools import cache, partial

import pandas as pd
import torch
from torch.profiler import ProfilerActivity
from transformers import PrinterCallback, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from ..core import batching, models, runtime
from ..core.tokenizer import world_tokenizer
from ..core.train import TrainConfig, attention_for, train
from ..core.world import bucket_world, build_corpus

#: Largest relative difference between the two loops' mean training losses for the comparison to count.
LOSS_TOLERANCE = 0.05

#: The operators whose work is matrix products, the work :func:`matmul_peak_flops` measures.
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def matmul_peak_flops(device: str = "cpu", dtype: torch.dtype = torch.float32, size: int = 1024, seconds=0.5) -> float:
    """FLOP/s of a large square matmul on ``device`` in ``dtype`` (the loops' compute dtype): the machine's practical
    peak for the work a transformer does, measured now, under the same thread settings as the loops."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b  # warm-up
    runs, start = 0, time.perf_counter()
    while True:
        a @ b
        runs += 1
        if device == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return 2 * size**3 * runs / elapsed


def training_flops(model: torch.nn.Module, tokens: int, mean_length: float) -> float:
    """Model FLOPs of training on ``tokens`` real tokens: 6 per parameter per token (forward and backward
    matmuls), plus attention's 12 × layers × context × width per token (Kaplan et al., 2020)."""
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    per_token = 6 * params + 12 * config.n_layer * mean_length * config.n_embd
    return per_token * tokens


@cache  # the benchmark and the step breakdown of one `make bench` train on the same world
def _setup(seed: int):
    world = bucket_world((0, 1, 2, 4, 8, 16, 32, 64), 150, seed=seed)
    tok = world_tokenizer(world)
    docs = tok(build_corpus(world, seed=seed), add_special_tokens=False)["input_ids"]
    return tok, docs


def _model(tok, seed: int):
    torch.manual_seed(seed)
    return models.tiny_gpt(tok)


def _prepare(device: str, precision: str, seed: int, **counts: int):
    """The device's type, the autocast dtype (None: fp32), and the benchmark's tokenizer and documents; ``counts``
    (steps, batch size, …) are checked to be positive first."""
    device = runtime.resolve_device(device).type
    for name, value in counts.items():
        runtime.check_positive_int(name, value)
    amp = runtime.autocast_dtype(torch.device(device), precision)  # checks precision too
    hf_logging.set_verbosity_error()
    tok, docs = _setup(seed)
    return device, amp, tok, docs


def _ours_inputs(tok, docs, *, steps: int, batch_size: int, lr: float, seed: int, precision: str):
    """The batches and the training config the book's loop runs on in the benchmark."""
    batches = batching.LMBatches(docs, batch_size=batch_size, eos_id=tok.eos_token_id, seed=seed)
    config = TrainConfig(steps=steps, lr=lr, log_every=_log_every(steps), seed=seed, precision=precision)
    return batches, config


def _log_every(steps: int) -> int:
    """A log interval that divides ``steps``, so the mean of the logged windows is the mean over all steps."""
    return next(d for d in (25, 10, 5, 1) if steps % d == 0)


OURS, TRAINER, TRAINER_EAGER = "halluc_lib.core.train", "transformers.Trainer", "transformers.Trainer, eager attention"


def run_ours(
    tok, docs, *, steps: int, batch_size: int, lr: float, seed: int, device: str = "cpu", precision: str = "auto"
) -> dict:
    """Throughput of :func:`halluc_lib.core.train.train` on these documents."""
    model = _model(tok, seed)
    start = time.perf_counter()
    batches, config = _ours_inputs(tok, docs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, precision=precision)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    result = train(model, batches, config, device=device, progress=False)
    wall = time.perf_counter() - start
    return {
        "loop": OURS,
        "tokens": result.tokens,
        "seconds": wall,
        "setup_seconds": setup,
        "mean_loss": result.history.loss.mean(),
        "flops": training_flops(model, result.tokens, result.tokens / (steps * batch_size)),
    }


def run_trainer(
    tok,
    docs,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str = "cpu",
    precision: str = "auto",
    book_attention: bool = False,
) -> dict:
    """Throughput of ``transformers.Trainer``, tuned as a careful user would (see the module docstring), on the
    same documents, in the precision the book's loop uses (bf16 autocast where native); with ``book_attention``
    it trains inside the book loop's attention choice (:func:`~halluc_lib.core.train.attention_for`), otherwise
    with transformers' own (SDPA)."""

    dataset = [{"input_ids": [tok.eos_token_id, *d]} for d in docs]
    counted = {"tokens": 0, "slots": 0}

    def collate_without_mask(examples):
        """Right-pad to the longest example; padding is ignored by the loss (-100) and, being on the right, is
        never attended to by a real token under the causal mask, so no attention mask is needed."""
        longest = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), longest), tok.eos_token_id, dtype=torch.long)
        labels = torch.full((len(examples), longest), -100, dtype=torch.long)
        for i, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[i, :n] = torch.tensor(e["input_ids"])
            labels[i, :n] = ids[i, :n]
        counted["tokens"] += int((labels != -100).sum())
        counted["slots"] += ids.numel()
        return {"input_ids": ids, "labels": labels}

    model = _model(tok, seed)
    amp = runtime.autocast_dtype(torch.device(device), precision)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            learning_rate=lr,
            weight_decay=0.01,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": 0.1},  # the book's loop also decays to 10% of the peak rate
            warmup_steps=int(0.05 * steps),
            optim="adamw_torch_fused",
            train_sampling_strategy="group_by_length",
            logging_nan_inf_filter=False,
            max_grad_norm=1.0,
            logging_steps=_log_every(steps),
            save_strategy="no",
            report_to=[],
            use_cpu=device == "cpu",
            bf16=amp is not None,
            dataloader_num_workers=0,
            disable_tqdm=True,
            seed=seed,
        )
        start = time.perf_counter()
        trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collate_without_mask)
        trainer.remove_callback(PrinterCallback)  # no per-log print: the book's loop prints nothing either
        setup = time.perf_counter() - start
        start = time.perf_counter()
        with attention_for(model, torch.device(device), amp) if book_attention else nullcontext():
            output = trainer.train()
        wall = time.perf_counter() - start
    return {
        "loop": TRAINER_EAGER if book_attention else TRAINER,
        "tokens": counted["tokens"],
        "seconds": wall,
        "setup_seconds": setup,
        "mean_loss": output.training_loss,
        "flops": training_flops(model, counted["tokens"], counted["slots"] / (steps * batch_size)),
    }


def profile_ours(
    tok, docs, *, steps: int, batch_size: int, lr: float, seed: int, device: str = "cpu", precision: str = "auto"
) -> tuple[pd.DataFrame, float]:
    """Each operator's own time and FLOPs over ``steps`` steps of the book's loop, and the run's wall seconds.

    A short run first lets the kernels be chosen and the memory pools grow, so the profiled run is a steady one.
    Returns a frame with columns ``op, seconds, flops`` (device time on a GPU, CPU time elsewhere).
    """
    warm_up = min(steps, 5)
    run_ours(tok, docs, steps=warm_up, batch_size=batch_size, lr=lr, seed=seed, device=device, precision=precision)
    model = _model(tok, seed)
    batches, config = _ours_inputs(tok, docs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, precision=precision)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.profiler.profile(activities=activities, with_flops=True) as profiler:
        start = time.perf_counter()
        train(model, batches, config, device=device, progress=False)
        wall = time.perf_counter() - start
    own = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    ops = pd.DataFrame(
        [{"op": e.key, "seconds": getattr(e, own) / 1e6, "flops": e.flops or 0} for e in profiler.key_averages()],
        columns=["op", "seconds", "flops"],
    )
    return ops, wall


def time_breakdown(ops: pd.DataFrame, wall_seconds: float, peak_flops_per_s: float, top: int = 5) -> dict:
    """Split a profiled run (``ops``: ``op, seconds, flops`` per operator; ``wall_seconds`` in all) into matrix
    products (:data:`MATMUL_OPS`) and the rest.

    Returns ``matmul_share`` (of the wall time), ``matmul_fraction_of_peak`` (their FLOP/s over the peak),
    ``floor_share`` (the time they would take at the peak, over the wall time: no loop doing these FLOPs can take
    less) and ``largest_others``, the ``top`` other operators by own time with their shares.
    """
    if not wall_seconds > 0:
        raise ValueError(f"wall_seconds must be > 0; got {wall_seconds!r}")
    if not peak_flops_per_s > 0:
        raise ValueError(f"peak_flops_per_s must be > 0; got {peak_flops_per_s!r}")
    matmul = ops.op.isin(MATMUL_OPS)
    matmul_seconds, matmul_flops = float(ops.seconds[matmul].sum()), float(ops.flops[matmul].sum())
    others = ops[~matmul].sort_values("seconds", ascending=False).head(top)
    return {
        "matmul_share": matmul_seconds / wall_seconds,
        "matmul_fraction_of_peak": matmul_flops / matmul_seconds / peak_flops_per_s if matmul_seconds else 0.0,
        "floor_share": matmul_flops / peak_flops_per_s / wall_seconds,
        "largest_others": [(op, seconds / wall_seconds) for op, seconds in zip(others.op, others.seconds, strict=True)],
    }


def step_breakdown(
    steps: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
    peak_flops_per_s: float | None = None,
) -> dict:
    """:func:`time_breakdown` of ``steps`` steps of the book's loop on the benchmark's model and data; the matmul
    peak is measured now unless given (pass the benchmark's, measured in the same run)."""
    device, amp, tok, docs = _prepare(device, precision, seed, steps=steps, batch_size=batch_size)
    peak = peak_flops_per_s or matmul_peak_flops(device, amp or torch.float32)
    ops, wall = profile_ours(
        tok, docs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device, precision=precision
    )
    return {"steps": steps, **time_breakdown(ops, wall, peak)}


def _book_switches_attention(tok, seed: int, device: str, amp: torch.dtype | None) -> bool:
    """Whether the book's loop trains this model with another attention than transformers' default."""
    model = _model(tok, seed)
    default = model.config._attn_implementation
    with attention_for(model, torch.device(device), amp):
        return model.config._attn_implementation != default


def benchmark(
    steps: int = 100,
    batch_size: int = 64,
    repeats: int = 3,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
    precision: str = "auto",
) -> pd.DataFrame:
    """Alternate the loops ``repeats`` times each on ``device`` in ``precision``; one row per run with tokens/s.

    The loops: the book's, the tuned Trainer, and — where the book's loop switches to eager attention (bf16 on a
    CPU) — the tuned Trainer with eager attention too."""
    device, amp, tok, docs = _prepare(device, precision, seed, steps=steps, batch_size=batch_size, repeats=repeats)
    peak = matmul_peak_flops(device, amp or torch.float32)
    runs = [run_ours, run_trainer]
    if _book_switches_attention(tok, seed, device, amp):
        runs.append(partial(run_trainer, book_attention=True))
    rows = []
    for r in range(repeats):
        for run in runs:
            row = run(
                tok, docs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device, precision=precision
            )
            flops_per_s = row["flops"] / row["seconds"]
            rows.append(
                {
                    "repeat": r,
                    "precision": "bf16" if amp is not None else "fp32",
                    **row,
                    "tokens_per_s": row["tokens"] / row["seconds"],
                    "flops_per_s": flops_per_s,
                    "peak_flops_per_s": peak,
                    "fraction_of_peak": flops_per_s / peak,
                }
            )
    return pd.DataFrame(rows)


def summarize(rows: pd.DataFrame, tolerance: float = LOSS_TOLERANCE) -> dict:
    """Median tokens/s and fraction of peak of each loop, their ratio (ours / Trainer), and the loss check."""
    med = rows.groupby("loop")[["tokens_per_s", "fraction_of_peak", "mean_loss", "setup_seconds"]].median()
    ours, theirs = med.loc[OURS], med.loc[TRAINER]
    loss_gap = abs(ours.mean_loss - theirs.mean_loss) / theirs.mean_loss
    eager = med.loc[TRAINER_EAGER] if TRAINER_EAGER in med.index else None
    return {
        "ours_tokens_per_s": float(ours.tokens_per_s),
        "trainer_tokens_per_s": float(theirs.tokens_per_s),
        "ratio": float(ours.tokens_per_s / theirs.tokens_per_s),
        "ours_fraction_of_peak": float(ours.fraction_of_peak),
        "trainer_fraction_of_peak": float(theirs.fraction_of_peak),
        "ours_mean_loss": float(ours.mean_loss),
        "trainer_mean_loss": float(theirs.mean_loss),
        "loss_gap": float(loss_gap),
        "same_loss": bool(loss_gap <= tolerance),
        "ours_setup_seconds": float(ours.setup_seconds),
        "trainer_setup_seconds": float(theirs.setup_seconds),
        "ratio_to_eager_trainer": None if eager is None else float(ours.tokens_per_s / eager.tokens_per_s),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help='"cpu", "cuda", "mps" or "auto" (default: cpu)')
    parser.add_argument("--precision", default="auto", help=f"one of {runtime.PRECISIONS} (default: auto)")
    parser.add_argument(
        "--profile-steps", type=int, default=20, help="steps of the book's loop to profile afterwards (0: none)"
    )
    args = parser.parse_args(argv)
    if args.profile_steps < 0:
        parser.error(f"--profile-steps must be >= 0; got {args.profile_steps}")
    runtime.set_threads()
    rows = benchmark(
        steps=args.steps,
        batch_size=args.batch_size,
        repeats=args.repeats,
        device=args.device,
        precision=args.precision,
    )
    print(f"device: {runtime.resolve_device(args.device)}, precision: {rows.precision.iloc[0]}")
    print(rows.round(3).to_string(index=False))
    s = summarize(rows)
    print(
        f"\nhalluc_lib.core.train: {s['ours_tokens_per_s']:,.0f} tokens/s   transformers.Trainer (tuned): "
        f"{s['trainer_tokens_per_s']:,.0f} tokens/s   ratio: {s['ratio']:.2f}x\n"
        f"fraction of the measured matmul peak ({rows.peak_flops_per_s.iloc[0] / 1e9:,.1f} GFLOP/s): "
        f"ours {s['ours_fraction_of_peak']:.1%}, Trainer {s['trainer_fraction_of_peak']:.1%}\n"
        f"set-up (outside the timed loop): ours {s['ours_setup_seconds']:.2f} s, "
        f"Trainer {s['trainer_setup_seconds']:.2f} s\n"
        f"loss check: mean training loss ours {s['ours_mean_loss']:.3f}, Trainer {s['trainer_mean_loss']:.3f} "
        f"(differ by {s['loss_gap']:.1%}; tolerance {LOSS_TOLERANCE:.0%}): "
        f"{'same work' if s['same_loss'] else 'NOT the same work'}"
    )
    if s.get("ratio_to_eager_trainer") is not None:
        print(f"against the Trainer also given eager attention: {s['ratio_to_eager_trainer']:.2f}x")
    if args.profile_steps:
        b = step_breakdown(
            steps=args.profile_steps,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
            peak_flops_per_s=float(rows.peak_flops_per_s.iloc[0]),
        )
        others = ", ".join(f"{op} {share:.0%}" for op, share in b["largest_others"])
        print(
            f"\nwhere the book's loop spends a step (torch.profiler, {b['steps']} steps):\n"
            f"matrix products: {b['matmul_share']:.0%} of the time, at {b['matmul_fraction_of_peak']:.0%} of the "
            f"peak; at the peak they alone would take {b['floor_share']:.0%} of it\n"
            f"largest other operators: {others}"
        )
    return 0 if s["same_loss"] else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
