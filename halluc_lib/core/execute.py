"""Executing a page with papermill: the build, the seed sweep, and chapter 4.7 when a record is missing.

One setting differs from papermill's defaults: after the last cell the kernel is stopped at once instead of being
asked to shut down. A kernel that has imported torch and transformers took about 2.8 s to exit gracefully here
(the interpreter's finalisation; measured on a one-cell page that only imports the library: 8.1 s graceful, 5.3 s
immediate), a few percent of the whole book's run. Nothing a page needs happens at exit: its claims record, the
model cache and the training logs are all written, atomically, by its cells.
"""

from __future__ import annotations

from pathlib import Path


def execute_page(
    notebook: str | Path,
    output: str | Path,
    *,
    parameters: dict | None = None,
    cwd=None,
    kernel_name: str = "python3",
) -> None:
    """Execute ``notebook`` into ``output`` with ``parameters`` injected, from ``cwd`` (default: its folder), in a
    fresh kernel of ``kernel_name`` (the build passes :func:`~halluc_lib.core.warm_kernel.warm_kernels`' name).

    A failing cell raises papermill's ``PapermillExecutionError``, which names the cell; ``output`` then holds the
    notebook executed up to the failure."""
    import papermill  # deferred: the book extra's dependency, needed only where pages are executed

    notebook = Path(notebook)
    papermill.execute_notebook(
        str(notebook),
        str(output),
        parameters=parameters or {},
        cwd=str(cwd or notebook.parent),
        kernel_name=kernel_name,
        progress_bar=False,
        shutdown_kernel="immediate",
    )
