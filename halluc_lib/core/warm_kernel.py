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


def _receive(conn: socket.socket) -> dict | None:
    """One newline-terminated JSON message, or None when the other side has closed the connection."""
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent (the zygote) dies; elsewhere do nothing."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _become_kernel(request: dict) -> None:
    """In the forked child: take the launcher's environment and folder, and run ipykernel until it exits."""
    gc.enable()
    os.setpgid(0, 0)  # its own process group: a Ctrl-C meant for the build reaches the build, not the kernel
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
    code = 0
    try:
        from ipykernel import kernelapp  # deferred: the book extra's dependency, loaded by the zygote already

        kernelapp.launch_new_instance(argv=argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    except BaseException:  # noqa: BLE001 - report, then leave without running the zygote's cleanup
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve(socket_path: str, preload=PRELOAD) -> None:
    """The zygote: import ``preload``, then fork a kernel for every launcher that connects to ``socket_path``.

    One loop, no threads: it accepts launchers, reaps kernels that exit (and tells their launcher the exit code),
    and kills a kernel whose launcher has gone.
    """
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    gc.disable()  # no collections while importing, so the imported objects are packed without freed holes
    for name in preload:
        importlib.import_module(name)
    transformers = sys.modules["transformers"]
    for name in ("GPT2LMHeadModel", "BertForMaskedLM", "BertForSequenceClassification", "PreTrainedTokenizerFast"):
        getattr(transformers, name)
    gc.freeze()  # the imports' objects move to a generation no collection visits: kernels don't copy their pages
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path + ".tmp")
    listener.listen()
    os.rename(socket_path + ".tmp", socket_path)  # the path appears only once launchers can connect
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    kernels: dict[int, socket.socket] = {}  # kernel pid -> its launcher's connection
    while True:
        for key, _ in selector.select(timeout=0.2):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                request = _receive(conn)
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
                _send(conn, {"pid": pid})
                selector.register(conn, selectors.EVENT_READ, pid)
            else:  # a launcher's connection is readable only when it has closed: its kernel goes too
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


def launch(socket_path: str, argv: list[str]) -> int:
    """The kernel spec's command: have the zygote fork a kernel, forward interrupts to it, return its exit code."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(socket_path)
    _send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)})
    reply = _receive(conn)
    if reply is None:
        return 1
    pid = reply["pid"]
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: os.kill(pid, received))
    done = _receive(conn)  # blocks until the kernel exits (or the zygote dies: then 1)
    return int(done["exit"]) if done else 1


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
