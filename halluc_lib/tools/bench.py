"""Benchmark: the book's training loop against ``transformers.Trainer`` on the same model, data and budget.

Run ``python -m halluc_lib.tools.bench`` (or ``make bench``). Both train the chapter 2.1 tiny GPT from the same
initial weights on the same biographies, with the same batch size (in documents), number of steps, learning
rate schedule and optimizer, in one process, alternating A/B/A/B so that drift in machine speed hits both.
Throughput is counted in *real* tokens (padding excluded), so it measures useful work, not slots.

Where the difference comes from, by design rather than timing: the book's loop batches documents of similar
length together (almost no padding) and relies on right padding so causal attention needs no mask (PyTorch's
fused causal kernel runs); the Trainer's standard collator pads every batch to its longest document and passes
an attention mask. Both use the fused AdamW step and the same model; neither is compiled.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pandas as pd
import torch
from transformers import DataCollatorForLanguageModeling, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from ..core import batching, models, runtime
from ..core.tokenizer import world_tokenizer
from ..core.train import TrainConfig, train
from ..core.world import bucket_world, build_corpus


def _setup(seed: int):
    world = bucket_world((0, 1, 2, 4, 8, 16, 32, 64), 150, seed=seed)
    tok = world_tokenizer(world)
    docs = tok(build_corpus(world, seed=seed), add_special_tokens=False)["input_ids"]
    return tok, docs


def _model(tok, seed: int):
    torch.manual_seed(seed)
    return models.tiny_gpt(tok)


def _log_every(steps: int) -> int:
    """A log interval that divides ``steps``, so the mean of the logged windows is the mean over all steps."""
    return next(d for d in (25, 10, 5, 1) if steps % d == 0)


def run_ours(tok, docs, *, steps: int, batch_size: int, lr: float, seed: int, device: str = "cpu") -> dict:
    """Throughput of :func:`halluc_lib.core.train.train` on these documents."""
    batches = batching.LMBatches(docs, batch_size=batch_size, eos_id=tok.eos_token_id, seed=seed)
    config = TrainConfig(steps=steps, lr=lr, log_every=_log_every(steps), seed=seed)
    start = time.perf_counter()
    result = train(_model(tok, seed), batches, config, device=device, progress=False)
    wall = time.perf_counter() - start
    return {
        "loop": "halluc_lib.core.train",
        "tokens": result.tokens,
        "seconds": wall,
        "mean_loss": result.history.loss.mean(),
    }


def run_trainer(tok, docs, *, steps: int, batch_size: int, lr: float, seed: int, device: str = "cpu") -> dict:
    """Throughput of ``transformers.Trainer`` with its standard causal-LM collator on the same documents.

    On CUDA it trains in bf16 autocast, as the book's loop does there; elsewhere in fp32.
    """

    dataset = [{"input_ids": [tok.eos_token_id, *d]} for d in docs]
    collate = DataCollatorForLanguageModeling(tok, mlm=False)
    counted = {"tokens": 0}

    def counting_collator(examples):
        batch = collate(examples)
        counted["tokens"] += int(batch["attention_mask"].sum())
        return batch

    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch_size,
            max_steps=steps,
            learning_rate=lr,
            weight_decay=0.01,
            lr_scheduler_type="cosine",
            warmup_steps=int(0.05 * steps),
            max_grad_norm=1.0,
            logging_steps=_log_every(steps),
            save_strategy="no",
            report_to=[],
            use_cpu=device == "cpu",
            bf16=device == "cuda",
            dataloader_num_workers=0,
            disable_tqdm=True,
            seed=seed,
        )
        trainer = Trainer(model=_model(tok, seed), args=args, train_dataset=dataset, data_collator=counting_collator)
        start = time.perf_counter()
        output = trainer.train()
        wall = time.perf_counter() - start
    return {
        "loop": "transformers.Trainer",
        "tokens": counted["tokens"],
        "seconds": wall,
        "mean_loss": output.training_loss,
    }


def benchmark(
    steps: int = 100,
    batch_size: int = 64,
    repeats: int = 3,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """Alternate the two loops ``repeats`` times each on ``device``; one row per run with tokens/s."""
    device = runtime.resolve_device(device).type
    runtime.check_positive_int("steps", steps)
    runtime.check_positive_int("batch_size", batch_size)
    runtime.check_positive_int("repeats", repeats)

    hf_logging.set_verbosity_error()
    tok, docs = _setup(seed)
    rows = []
    for r in range(repeats):
        for run in (run_ours, run_trainer):
            row = run(tok, docs, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device)
            rows.append({"repeat": r, **row, "tokens_per_s": row["tokens"] / row["seconds"]})
    return pd.DataFrame(rows)


def summarize(rows: pd.DataFrame) -> dict:
    """Median tokens/s of each loop and their ratio (ours / Trainer)."""
    med = rows.groupby("loop").tokens_per_s.median()
    return {
        "ours_tokens_per_s": float(med["halluc_lib.core.train"]),
        "trainer_tokens_per_s": float(med["transformers.Trainer"]),
        "ratio": float(med["halluc_lib.core.train"] / med["transformers.Trainer"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help='"cpu", "cuda", "mps" or "auto" (default: cpu)')
    args = parser.parse_args(argv)
    runtime.set_threads()
    rows = benchmark(steps=args.steps, batch_size=args.batch_size, repeats=args.repeats, device=args.device)
    print(f"device: {runtime.resolve_device(args.device)}")
    print(rows.round(3).to_string(index=False))
    s = summarize(rows)
    print(
        f"\nhalluc_lib.core.train: {s['ours_tokens_per_s']:,.0f} tokens/s   transformers.Trainer: "
        f"{s['trainer_tokens_per_s']:,.0f} tokens/s   ratio: {s['ratio']:.2f}x"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
