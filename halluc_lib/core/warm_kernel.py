"""Warm kernels: each page's kernel forked from one process that has already imported torch and transformers.

Why: every page runs in a fresh kernel, and a fresh kernel spends seconds importing the same libraries before its
first experiment starts (torch, transformers' model code, pandas, matplotlib and seaborn, ipykernel itself). One
*zygote* process imports them once; each page's kernel is a fork of it, so it starts with them loaded — and
still shares nothing with the pages before it, since every fork is a copy of the zygote, never of an earlier
page. Nothing of the book's own library is preloaded, so a page still imports (and its record still hashes)
exactly the ``halluc_lib`` modules it uses.

How: Jupyter starts a kernel by running its kernel spec's command. The spec written by :func:`warm_kernels`
runs :func:`launch` (``python -m halluc_lib.core.warm_kernel launch SOCKET -f CONNECTION_FILE``), a thin launcher
that asks the zygote, over a Unix socket, to fork a kernel with the launcher's environment, working directory
and arguments; it forwards interrupts to the kernel and exits with it. When the launcher dies (papermill kills it
at the end of a page) the zygote kills the kernel, and a kernel dies with its zygote.

A fork is safe here because the zygote only imports: it runs no tensor operation, so no thread pool exists to be
copied half-alive. Linux and macOS only (``fork``); elsewhere :func:`warm_kernels` yields the ordinary kernel.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

KERNEL_NAME = "halluc-warm"
# what every page's kernel imports; loading transformers' model classes resolves its lazy module once, here
PRELOAD = (
    "torch",
    "numpy",
    "pandas",
    "matplotlib.pyplot",
    "seaborn",
    "tokenizers",
    "safetensors.torch",
    "transformers",
    "transformers.models.gpt2.modeling_gpt2",
    "transformers.models.bert.modeling_bert",
    "ipykernel.kernelapp",
)
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # what ipykernel would set before matplotlib loads


def _send(conn: socket.socket, message: dict) -> None:
    conn.sendall(json.dumps(message).encode() + b"\n")


def _receive(reader) -> dict | None:
    """One newline-terminated JSON message from ``reader`` (a socket's ``makefile("rb")``), or None when the other
    side has closed the connection (or sent something that is not a message)."""
    try:
        line = reader.readline()
        return json.loads(line) if line.endswith(b"\n") else None
    except (OSError, ValueError):
        return None


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies; elsewhere do nothing."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is now: the kernel's, once ipykernel has replaced it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _log_to_current_stderr() -> None:
    """Point the logging handlers the preloaded libraries made (transformers' among them) at the kernel's stderr,
    so their messages land in the cell that caused them, as in a fresh kernel."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                handler.setStream(_CurrentStderr())
                handler.__dict__.pop("flush", None)  # transformers pins the zygote's stderr.flush on it


def _become_kernel(request: dict) -> None:
    """In the forked child: take the launcher's environment and folder, and run ipykernel until it exits."""
    code = 1
    try:
        gc.enable()
        os.setsid()  # its own session, as jupyter starts a kernel: no terminal, and a Ctrl-C goes to the build
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        _die_with_parent()
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # as `python -m ipykernel_launcher` started there would have it
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["MPLBACKEND"] = INLINE_BACKEND
        if "pandas" in sys.modules:  # pandas chose its column limit at import, outside a kernel: give a kernel's
            sys.modules["pandas"].set_option("display.max_columns", 20)
        # the kernel watches the zygote, its real parent (ipykernel read JPY_PARENT_PID when the zygote imported it)
        argv = [*request["argv"], f"--IPKernelApp.parent_handle={os.getppid()}"]
        sys.argv = ["ipykernel_launcher", *argv]
        from ipykernel import kernelapp  # deferred: the book extra's dependency, loaded by the zygote already

        kernelapp.launch_new_instance(argv=argv)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:  # noqa: BLE001 - report, then leave without running the zygote's cleanup
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _preload(names) -> None:
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    gc.disable()  # no collections while importing, so the imported objects are packed without freed holes
    for name in names:
        importlib.import_module(name)
    transformers = sys.modules.get("transformers")
    for name in ("GPT2LMHeadModel", "BertForMaskedLM", "BertForSequenceClassification", "PreTrainedTokenizerFast"):
        getattr(transformers, name, None)  # resolves transformers' lazy module once, here
    _log_to_current_stderr()
    gc.freeze()  # the imports' objects move to a generation no collection visits: kernels don't copy their pages


def serve(socket_path: str, preload=PRELOAD) -> None:
    """The zygote: import ``preload``, then fork a kernel for every launcher that connects to ``socket_path``.

    One loop, no threads: it accepts launchers, reaps kernels that exit (and tells their launcher the exit code),
    kills a kernel whose launcher has gone, and, when the build that started it is gone, kills its kernels and
    stops.
    """
    parent = os.getppid()
    _die_with_parent()
    _preload(preload)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".tmp")
    listener.listen()
    os.rename(socket_path + ".tmp", socket_path)  # the path appears only once launchers can connect
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    kernels: dict[int, socket.socket | None] = {}  # kernel pid -> its launcher's connection, None once closed
    while os.getppid() == parent:
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.settimeout(10)
                request = _receive(conn.makefile("rb"))
                if request is None:
                    conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    listener.close()
                    conn.close()
                    _become_kernel(request)
                kernels[pid] = conn
                try:
                    _send(conn, {"pid": pid})
                except OSError:  # the launcher is gone already
                    os.kill(pid, signal.SIGKILL)
                    kernels[pid] = None
                    conn.close()
                    continue
                selector.register(conn, selectors.EVENT_READ, pid)
            else:  # a launcher's connection is readable only when it has closed: its kernel goes too
                selector.unregister(key.fileobj)
                key.fileobj.close()
                kernels[key.data] = None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(key.data, signal.SIGKILL)
        while kernels:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = kernels.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                selector.unregister(conn)
                conn.close()
    for pid in kernels:  # the build is gone: so are its kernels
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def launch(socket_path: str, argv: list[str]) -> int:
    """The kernel spec's command: have the zygote fork a kernel, forward interrupts to it, return its exit code
    (128 + the signal's number for a kernel killed by a signal, as a shell reports it)."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    reader = conn.makefile("rb")
    _send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)})
    reply = _receive(reader)
    if reply is None:
        return 1
    pid = reply["pid"]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: os.kill(pid, received))
    done = _receive(reader)  # blocks until the kernel exits (or the zygote dies: then 1)
    if done is None:
        return 1
    code = int(done["exit"])
    return 128 - code if code < 0 else code


@contextlib.contextmanager
def warm_kernels(*, enabled: bool = True, timeout: float = 120.0):
    """Start a zygote and a kernel spec that forks from it; yield the kernel name to give papermill.

    Yields ``"python3"`` (the ordinary kernel) when ``enabled`` is false or the platform cannot fork. The zygote
    is stopped, and the spec removed, on leaving the block.
    """
    if not enabled or not hasattr(os, "fork"):
        yield "python3"
        return
    with tempfile.TemporaryDirectory(prefix="halluc-warm-") as folder:
        socket_path = str(Path(folder) / "zygote.sock")
        spec = Path(folder) / "kernels" / KERNEL_NAME
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "halluc_lib.core.warm_kernel", "launch", socket_path, "-f", "{connection_file}"]
        spec.joinpath("kernel.json").write_text(
            json.dumps({"argv": argv, "display_name": "Python 3 (warm)", "language": "python"})
        )
        zygote = subprocess.Popen([sys.executable, "-m", "halluc_lib.core.warm_kernel", "serve", socket_path])
        previous = os.environ.get("JUPYTER_PATH")
        try:
            started = time.perf_counter()
            while not os.path.exists(socket_path):
                if zygote.poll() is not None or time.perf_counter() - started > timeout:
                    raise RuntimeError(f"the warm-kernel zygote did not start (exit code {zygote.poll()})")
                time.sleep(0.05)
            print(f"warm kernels: libraries imported once in {time.perf_counter() - started:.1f} s", flush=True)
            os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [folder, previous]))
            yield KERNEL_NAME
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous
            zygote.kill()
            zygote.wait(timeout)


def main(argv: list[str] | None = None) -> int:
    """The command line: ``serve SOCKET`` runs the zygote, ``launch SOCKET -f FILE`` is the kernel spec's command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) >= 2 and args[0] == "serve":
        serve(args[1])
        return 0
    if len(args) >= 2 and args[0] == "launch":
        return launch(args[1], args[2:])
    usage = "usage: python -m halluc_lib.core.warm_kernel serve SOCKET | launch SOCKET -f CONNECTION_FILE"
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
