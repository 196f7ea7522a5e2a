"""Quoting computed numbers in the prose (every chapter).

``glue(name, value)`` hands a value to MyST-NB so that the page can write ``{glue:text}`name:.2f` `` instead
of a typed-in number. Outside a Jupyter Book build (plain Jupyter, Colab) ``myst_nb`` may be absent; then
``glue`` just returns the value, so notebooks run the same everywhere.
"""

from __future__ import annotations

from typing import Any

try:  # pragma: no cover - which branch runs depends on the environment
    from myst_nb import glue as _myst_glue
except ImportError:  # pragma: no cover
    _myst_glue = None


def _in_kernel() -> bool:
    try:  # IPython is there only inside a notebook kernel: an optional dependency, imported when needed
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return get_ipython() is not None


def glue(name: str, value: Any, display: bool = False) -> None:
    """Make ``value`` quotable in the page as ``name``.

    NumPy scalars are converted to Python numbers so that format specs like ``:.2f`` work. Returns nothing,
    so a cell that ends with ``glue(...)`` prints nothing.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if _myst_glue is not None and _in_kernel():
        _myst_glue(name, value, display=display)
