"""Run one chapter's experiment at a larger size, on one device or on several under ``torchrun``.

::

    python -m halluc_lib.tools.scale_up exposure --scale full                       # one GPU (or the CPU)
    torchrun --nproc-per-node 4 -m halluc_lib.tools.scale_up exposure --scale full  # four GPUs, data parallel

Every rank runs the chapter's ``run(Config.for_scale(scale), seed=...)``; inside the one training loop each rank
trains on its share of every global batch (:mod:`halluc_lib.core.distributed`), so the result is the one a
single device would get with the same global batch. Rank 0 writes every table of the chapter's ``Run`` as CSV
to ``--out`` and prints their first rows. The chapter's claims live in its notebook: execute that with
papermill at the same scale to check them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from dataclasses import fields, is_dataclass
from pathlib import Path

import pandas as pd

from .. import chapters
from ..core import distributed
from ..core.runtime import check_scale

CHAPTERS = tuple(sorted(m.name for m in pkgutil.iter_modules(chapters.__path__)))


def tables_of(run) -> dict[str, pd.DataFrame]:
    """Every DataFrame a chapter's ``Run`` holds, by field name (one level of nested dataclasses included)."""
    found = {}
    for f in fields(run) if is_dataclass(run) else []:
        value = getattr(run, f.name)
        if isinstance(value, pd.DataFrame):
            found[f.name] = value
        elif is_dataclass(value):
            found |= {f"{f.name}.{k}": v for k, v in tables_of(value).items()}
    return found


def scale_up(chapter: str, *, scale: str = "full", seed: int = 0, out: Path = Path("_build/scale_up")) -> dict:
    """Run ``chapter``'s experiment at ``scale`` on this rank's device; rank 0 writes its tables to ``out``."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {CHAPTERS}; got {chapter!r}")
    check_scale(scale)
    device = distributed.init_from_env()
    module = importlib.import_module(f"{chapters.__name__}.{chapter}")
    run = module.run(module.Config.for_scale(scale), seed=seed, device=device, progress=distributed.is_main())
    tables = tables_of(run)
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.to_csv(out / f"{chapter}_{scale}_seed{seed}_{name}.csv", index=False)
            print(f"{name}:\n{table.head(8).to_string()}\n", flush=True)
    distributed.barrier()
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.scale_up", description=__doc__.split("\n")[0])
    parser.add_argument("chapter", choices=CHAPTERS)
    parser.add_argument("--scale", default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("_build/scale_up"))
    args = parser.parse_args(argv)
    scale_up(args.chapter, scale=args.scale, seed=args.seed, out=args.out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
