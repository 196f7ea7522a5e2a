"""The seed sweep on a lent GPU machine: the wheels it lacks, one command that sweeps until a deadline, and the
records brought home.

Why: the project's GPU machines are lent for minutes at a time, one command of at most ten minutes, and they
start bare. Their image holds PyTorch with CUDA, transformers and the scientific stack, but neither Jupyter nor
papermill nor datasketch, and nothing can be downloaded there; only files written under ``$OUT`` come back (a
few, a few MiB each). A session that is lent such a machine should spend its minutes sweeping, not setting up.

Three steps, each one command::

    make device-wheels                     # here: .whl/ holds what the image lacks, for its Python 3.12
    # there (the device tool's run, carrying .whl), one command:
    python3 -m halluc_lib.tools.device_kit sweep --out $OUT --deadline 540 --seeds 0 1 2 --commit HASH
    # here again, with the tarball that came back:
    .venv/bin/python -m halluc_lib.tools.device_kit unpack PATH/sweeps.tar.gz

``HASH`` is this checkout's ``git rev-parse HEAD``, typed into the command: the copy of the tree there has no git,
and the records name the commit they ran.

``sweep`` installs the carried wheels into a private folder and checks that they import, then runs the pages in
*lanes*: one chapter's pages, in reading order, at one seed, per process, each lane with its own model cache —
all lanes at once. Small models leave a GPU mostly idle while Python prepares the next step, so processes that
take turns on it still get more done together than one after another. A chapter stays in one lane because its
pages reuse each other's cached models and chapter 4.7 reads what 4.1-4.6 recorded; chapter 1 rides in chapter
2's lane, because 2.1 reuses the model chapter 1 trains. Each finished page is merged into ``data/sweeps`` as it
ends (the sweep tool's own merge, locked and atomic), and every 20 seconds a tarball of the sweep files is
rewritten under ``$OUT``, so whatever finished before the deadline comes back even if the command is killed.
``unpack`` merges the GPU runs of that tarball into this checkout's sweep files, leaving every other run as it
was. No page has yet run at full scale on a GPU: the first session that does should read each page's time in
the output and split a lane (``--pages``) that did not finish.

Chapters 6.2 and 6.3 are left out by default: they read a pretrained MiniLM whose wheel (88 MB) is larger than
what one device call may carry (64 MiB). ``DEVICE_IMAGE`` lists that machine's packages; for another machine
that cannot download, edit it.

Everything this module runs before the wheels are installed uses the standard library only.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".whl"
SITE = Path("/tmp/halluc-site")
DEVICE_PYTHON = "3.12"
DEVICE_PLATFORMS = (
    "manylinux_2_35_x86_64",
    "manylinux_2_34_x86_64",
    "manylinux_2_31_x86_64",
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_26_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
)
# What a page needs beyond PyTorch: the library's own requirements and the notebook runner.
PAGE_REQUIREMENTS = (
    "transformers",
    "tokenizers",
    "safetensors",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "seaborn",
    "tqdm",
    "scikit-learn",
    "datasketch",
    "tensorboard",
    "papermill",
    "ipykernel",
)
# The device image's packages (the device tool's KINDS.md, as read on 2026-11-17): not carried, except those in
# CARRY_ANYWAY, where the book's pinned version matters more than a few MiB (the Hugging Face stack's API moves).
DEVICE_IMAGE = frozenset(
    """absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
    certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
    cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
    flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx humanize
    huggingface-hub hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib
    jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite
    lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict
    multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro nvidia-ml-py
    onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
    orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client propcache
    protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest
    pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml
    regex requests rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn
    sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
    tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz
    torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
    typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl
    zipp""".split()
)
CARRY_ANYWAY = frozenset({"transformers", "tokenizers", "huggingface-hub", "hf-xet"})
CARRY_LIMIT_MIB = 60  # what one device call may carry is 64 MiB, the working tree included
NEEDS_MINILM = ("ch06_2_corrected_script", "ch06_3_what_pretraining_buys")
TARBALL = "sweeps.tar.gz"
BOOK_ENVIRONMENT = {
    "PYTHONHASHSEED": "0",
    # torch.cuda.is_available() asks NVML instead of starting CUDA, which a warm kernel's zygote must never do:
    # a CUDA driver started before fork() is unusable in every page's kernel forked after it
    "PYTORCH_NVML_BASED_CUDA_CHECK": "1",
    "HALLUC_CACHE": str(ROOT / "_build" / "cache"),
    "HALLUC_RUNS": str(ROOT / "_build" / "runs"),
}


def project_name(wheel_file: str) -> str:
    """The normalised project name of a wheel file (``huggingface_hub-1.3-py3-none-any.whl`` →
    ``huggingface-hub``), as PEP 503 compares names."""
    if not wheel_file.endswith(".whl"):
        raise ValueError(f"wheel_file must name a .whl file; got {wheel_file!r}")
    return re.sub(r"[-_.]+", "-", Path(wheel_file).name.split("-")[0]).lower()


def wheels_to_carry(wheel_files: Iterable[str], image: frozenset[str] = DEVICE_IMAGE) -> list[str]:
    """The wheels the device needs: those whose project its image lacks, and those in ``CARRY_ANYWAY``."""
    return sorted(w for w in wheel_files if project_name(w) not in image or project_name(w) in CARRY_ANYWAY)


def download_wheels(dest: Path = WHEELS, constraints: Path = ROOT / "constraints.txt") -> list[Path]:
    """Download, for the device's Python and platform, the page requirements at this checkout's pinned versions;
    keep only the wheels the device lacks (:func:`wheels_to_carry`) in ``dest``; return them."""
    with tempfile.TemporaryDirectory() as tmp:
        platforms = [arg for p in DEVICE_PLATFORMS for arg in ("--platform", p)]
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", DEVICE_PYTHON,
             "--implementation", "cp", *platforms, "-c", str(constraints), "-d", tmp, *PAGE_REQUIREMENTS],
            check=True,
        )  # fmt: skip
        keep = wheels_to_carry(p.name for p in Path(tmp).glob("*.whl"))
        dest.mkdir(parents=True, exist_ok=True)
        for old in dest.glob("*.whl"):
            old.unlink()
        for name in keep:
            os.replace(Path(tmp) / name, dest / name)
    kept = sorted(dest.glob("*.whl"))
    mib = sum(p.stat().st_size for p in kept) / 2**20
    if mib > CARRY_LIMIT_MIB:
        raise RuntimeError(f"the wheels take {mib:.0f} MiB, more than a device call carries ({CARRY_LIMIT_MIB} MiB)")
    print(f"{len(kept)} wheels, {mib:.1f} MiB, in {dest}: carry it (carry=['.whl'])")
    return kept


# What a lane imports, checked once before the lanes start; its output (the versions) heads the command's output.
IMPORT_CHECK = (
    "import datasketch, ipykernel, matplotlib, numpy, pandas, papermill, scipy, sklearn, torch, transformers\n"
    "transformers.GPT2LMHeadModel, transformers.BertForMaskedLM\n"
    "print('versions:', ', '.join(f'{m.__name__} {m.__version__}' for m in "
    "(torch, transformers, numpy, pandas, scipy, sklearn, matplotlib)), '| cuda:', torch.cuda.is_available())"
)


def install_wheels(wheels: Path = WHEELS, site: Path = SITE) -> None:
    """Install the carried wheels into ``site`` (no index, no dependencies: the image has the rest), put it and
    this checkout first on the path of this process and of every process it starts, and check that a page's
    libraries import there — before any lane starts, so a missing carry fails in seconds, not in every lane."""
    files = sorted(str(p) for p in wheels.glob("*.whl"))
    if not files:
        raise FileNotFoundError(f"no wheels in {wheels}: run `make device-wheels` here and carry {wheels.name}")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--no-cache-dir", "--upgrade", "--target", str(site), *files],
        check=True,
    )  # fmt: skip
    paths = [str(site), str(ROOT)]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + [p for p in [os.environ.get("PYTHONPATH")] if p])
    sys.path[:0] = paths
    subprocess.run([sys.executable, "-c", IMPORT_CHECK], check=True)


# Chapters whose pages run in another chapter's lane: 2.1 reuses the model chapter 1 trains.
SHARES_LANE_WITH = {"01": "02"}


def lanes(pages: list[str]) -> list[list[str]]:
    """Group page slugs (``ch04_2_adversarial``) into lanes, one per chapter (chapter 1 in chapter 2's), keeping
    reading order in each."""
    groups: dict[str, list[str]] = {}
    for page in pages:
        match = re.match(r"ch(\d+)", page)
        if not match:
            raise ValueError(f"pages: {page!r} is not a page slug such as 'ch04_2_adversarial'")
        groups.setdefault(SHARES_LANE_WITH.get(match.group(1), match.group(1)), []).append(page)
    return list(groups.values())


def pack(sweep_dir: Path, out: Path, name: str = TARBALL) -> Path:
    """Write every sweep file of ``sweep_dir`` into ``out/name`` (gzip'd tar), atomically: a reader — or a
    command killed mid-write — never sees half a tarball."""
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(sweep_dir.glob("*.json")):
            data = path.read_bytes()  # one read: a lane may replace the file meanwhile, never truncate it
            info = tarfile.TarInfo(path.name)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    target = out / name
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-", suffix=".tar.gz")
    with os.fdopen(fd, "wb") as handle:
        handle.write(buffer.getvalue())
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep it from the reader who fetches it
    os.replace(tmp, target)
    return target


def unpack(tarball: Path, sweep_dir: Path | None = None, device_kind: str = "cuda") -> list[tuple[str, int]]:
    """Merge the ``device_kind`` runs of a tarball written by :func:`pack` into the sweep files here, where they
    differ from the run here at the same scale and seed; every other run here stays as it was. Returns the
    (page, seed) of each run merged."""
    # This module runs on the bare device too, where the library's dependencies exist only once install_wheels
    # has run: the library is imported inside the functions that need it.
    from ..core import sweeps  # deferred: see above
    from .sweep import merge_run  # deferred: see above

    sweep_dir = sweeps.SWEEP_DIR if sweep_dir is None else sweep_dir
    merged = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            if not (member.isfile() and member.name.endswith(".json")) or "/" in member.name:
                continue
            data = json.loads(tar.extractfile(member).read())
            here = sweeps.load_sweep(data["page"], sweep_dir)["runs"]
            for record in data["runs"]:
                if sweeps.device_kind(record.get("device")) == device_kind and record not in here:
                    merge_run(data["page"], record, sweep_dir)
                    merged.append((data["page"], record.get("seed", 0)))
    return merged


def core_shares(n: int, cores: list[int]) -> list[list[int]]:
    """Deal ``cores`` out to ``n`` processes, round robin; with more processes than cores, each gets one core and
    some share it. No cores known (not Linux): every share is empty, and nothing is pinned."""
    if not cores:
        return [[] for _ in range(n)]
    if n <= len(cores):
        return [cores[i::n] for i in range(n)]
    return [[cores[i % len(cores)]] for i in range(n)]


def run_lanes(
    commands: list[list[str]],
    *,
    deadline: float,
    every: float = 20.0,
    on_tick: Callable[[], None] = lambda: None,
    log=sys.stdout,
    envs: list[dict[str, str]] | None = None,
) -> list[int | None]:
    """Start every command at once (each pinned to its share of the cores, with ``envs[i]`` added to its
    environment, output to ``log``); call ``on_tick`` every ``every`` seconds until all end or ``deadline``
    seconds pass, then stop those still running and call it once more. Returns each command's exit status
    (``None``: stopped at the deadline). A failing ``on_tick`` is reported, never allowed to leave lanes running."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    envs = envs if envs is not None else [{} for _ in commands]
    procs = []

    def tick():
        try:
            on_tick()
        except Exception as exc:  # noqa: BLE001 - a failed pack must not stop the sweep; the next tick retries
            print(f"on_tick failed: {exc!r}", file=sys.stderr, flush=True)

    try:
        for cmd, share, extra in zip(commands, core_shares(len(commands), cores), envs, strict=True):
            pin = (lambda s=share: os.sched_setaffinity(0, s)) if share else None
            env = os.environ | extra
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin, env=env))
        start = time.monotonic()
        while any(p.poll() is None for p in procs) and time.monotonic() - start < deadline:
            time.sleep(min(every, max(0.1, deadline - (time.monotonic() - start))))
            tick()
    finally:
        codes = [_stop(p) for p in procs]
        tick()
    return codes


def _stop(proc: subprocess.Popen) -> int | None:
    """``proc``'s exit status, or ``None`` after stopping it (politely, then not)."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return None


def device_sweep(
    out: Path,
    *,
    deadline: float,
    seeds: list[int],
    scale: str,
    device: str,
    pages: list[str] | None,
    warm: bool = True,
    commit: str | None = None,
) -> list[int | None]:
    """Install the carried wheels, then sweep every lane at every seed at once until ``deadline`` seconds have
    passed, packing the sweep files into ``out`` every 20 s. ``warm=False``: ordinary kernels in every lane;
    ``commit``: what the records name as the commit that ran. Returns each lane's exit status (``None``: stopped
    at the deadline)."""
    start = time.monotonic()
    for name, value in BOOK_ENVIRONMENT.items():  # what `make` exports for the build and the sweep
        os.environ.setdefault(name, value)
    install_wheels()
    from ..core.sweeps import SWEEP_DIR  # deferred: importable only now that the wheels are installed
    from .build import experiment_notebooks  # deferred: likewise
    from .sweep import COMMIT_ENV  # deferred: likewise

    if commit:
        os.environ[COMMIT_ENV] = commit  # read by the lanes' sweep tool, which finds no git there

    every = [nb.stem for nb in experiment_notebooks(ROOT)]
    chosen = pages if pages else [p for p in every if p not in NEEDS_MINILM]
    unknown = sorted(set(chosen) - set(every))
    if unknown:
        raise ValueError(f"pages: unknown {unknown}; accepted values: {every}")
    units = [(lane, seed) for lane in lanes(chosen) for seed in seeds]
    commands = [
        [sys.executable, "-m", "halluc_lib.tools.sweep", "--seeds", str(seed), "--scale", scale,
         "--device", device, "--jobs", "1", *([] if warm else ["--cold-kernels"]), "--pages", *lane]
        for lane, seed in units
    ]  # fmt: skip
    cache = Path(os.environ["HALLUC_CACHE"])
    envs = [{"HALLUC_CACHE": str(cache / f"lane{i}")} for i in range(len(units))]  # no two lanes race on a model
    print(f"{len(commands)} lanes ({len(chosen)} pages x {len(seeds)} seeds) until {deadline:.0f} s", flush=True)
    log_path = out / "device_sweep.log"
    with open(log_path, "w") as log:
        codes = run_lanes(
            commands,
            deadline=deadline - (time.monotonic() - start) - 15,  # 15 s to stop the lanes and pack
            on_tick=lambda: pack(SWEEP_DIR, out),
            log=log,
            envs=envs,
        )
    lines = log_path.read_text(errors="replace").splitlines()
    print("\n".join(line for line in lines if line.startswith("seed ")))
    for (lane, seed), code in zip(units, codes, strict=True):
        if code not in (0, None):
            print(f"lane {lane[0]}.. seed {seed} exited {code}; the log's end:\n" + "\n".join(lines[-40:]))
            break
    stopped = [f"{lane[0]}.. seed {seed}" for (lane, seed), code in zip(units, codes, strict=True) if code is None]
    print(f"lanes: {codes.count(0)} passed, {len(codes) - codes.count(0) - len(stopped)} failed, "
          f"{len(stopped)} stopped at the deadline {stopped}")  # fmt: skip
    return codes


def exit_status(codes: list[int | None]) -> int:
    """The sweep command's exit status: 0 when every lane finished and passed, 1 when one failed (a claim or a
    cell), 2 when none failed but some were stopped at the deadline."""
    if any(code not in (0, None) for code in codes):
        return 1
    return 2 if None in codes else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.device_kit", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    wheels = sub.add_parser("wheels", help="here: download what the device image lacks into .whl/")
    wheels.add_argument("--dest", type=Path, default=WHEELS)
    sweep = sub.add_parser("sweep", help="there: sweep the pages in lanes until the deadline, packing into --out")
    sweep.add_argument("--out", type=Path, required=True, help="the folder that comes back ($OUT)")
    sweep.add_argument("--deadline", type=float, default=540.0, help="seconds before this command must end")
    sweep.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sweep.add_argument("--scale", default="full")
    sweep.add_argument("--device", default="cuda")
    sweep.add_argument("--pages", nargs="*", default=None, help="page slugs (default: all but chapters 6.2, 6.3)")
    sweep.add_argument("--cold-kernels", action="store_true", help="ordinary kernels, not forks of a warm one")
    sweep.add_argument("--commit", default=None, help="this checkout's commit (the copy there has no git)")
    back = sub.add_parser("unpack", help="here: merge the GPU runs of a tarball into data/sweeps")
    back.add_argument("tarball", type=Path)
    back.add_argument("--device-kind", default="cuda")
    args = parser.parse_args(argv)
    if args.command == "wheels":
        download_wheels(args.dest)
        return 0
    if args.command == "sweep":
        if args.deadline <= 30:
            parser.error(f"--deadline must be more than 30 seconds; got {args.deadline}")
        codes = device_sweep(
            args.out,
            deadline=args.deadline,
            seeds=args.seeds,
            scale=args.scale,
            device=args.device,
            pages=args.pages,
            warm=not args.cold_kernels,
            commit=args.commit,
        )
        return exit_status(codes)
    merged = unpack(args.tarball, device_kind=args.device_kind)
    print(f"merged {len(merged)} runs: {sorted(set(p for p, _ in merged))}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
