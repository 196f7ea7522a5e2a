"""Warm kernels: a page's kernel forked from a zygote behaves as a fresh kernel would, and leaves nothing behind."""

from __future__ import annotations

import json
import os
import time

import pytest
from papermill.exceptions import PapermillExecutionError

from halluc_lib.core.execute import execute_page
from halluc_lib.core.warm_kernel import KERNEL_NAME, warm_kernels
from tests.pages import write_page


def _printed(output):
    cells = json.loads(output.read_text())["cells"]
    return json.loads("".join(cells[-1]["outputs"][0]["text"]))


@pytest.fixture(scope="module")
def kernel():
    with warm_kernels() as name:
        yield name


def test_a_warm_kernel_starts_with_the_libraries_loaded_and_behaves_as_a_fresh_one(kernel, tmp_path, monkeypatch):
    assert kernel == KERNEL_NAME
    monkeypatch.setenv("HALLUC_WARM_TEST", "from the build")  # as the build hands a page its record path
    probe = """import json, os, sys
preloaded = "torch" in sys.modules  # before any cell imported it: the fork's
import matplotlib, pandas
print(json.dumps({"seed": seed, "cwd": os.getcwd(), "env": os.environ.get("HALLUC_WARM_TEST"),
                  "preloaded": preloaded, "backend": matplotlib.get_backend(),
                  "max_columns": pandas.get_option("display.max_columns"), "pid": os.getpid()}))"""
    page = write_page(tmp_path / "page.ipynb", "seed = 0", probe)
    execute_page(page, tmp_path / "out.ipynb", parameters={"seed": 6}, kernel_name=kernel)
    seen = _printed(tmp_path / "out.ipynb")
    assert seen["preloaded"]
    assert (seen["seed"], seen["cwd"], seen["env"]) == (6, str(tmp_path), "from the build")
    assert seen["backend"] == "module://matplotlib_inline.backend_inline"  # figures still appear in the page
    assert seen["max_columns"] == 20  # pandas' setting inside a kernel, not the terminal's 0


def test_pages_in_warm_kernels_share_no_state(kernel, tmp_path):
    first = write_page(tmp_path / "first.ipynb", "seed = 0", "import torch\ntorch.left_by_first_page = 1\nprint('{}')")
    check = (
        "import json, os, torch\nprint(json.dumps({'left': hasattr(torch, 'left_by_first_page'), 'pid': os.getpid()}))"
    )
    second = write_page(tmp_path / "second.ipynb", "seed = 0", check)
    execute_page(first, tmp_path / "first_out.ipynb", kernel_name=kernel)
    execute_page(second, tmp_path / "second_out.ipynb", kernel_name=kernel)
    seen = _printed(tmp_path / "second_out.ipynb")
    assert not seen["left"]
    deadline = time.monotonic() + 10  # the page's kernel is stopped with its launcher
    while time.monotonic() < deadline:
        try:
            os.kill(seen["pid"], 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the kernel of a finished page is still running")


def test_library_log_messages_land_in_the_cell_that_logged_them(kernel, tmp_path):
    log = "from transformers.utils import logging\nlogging.get_logger('transformers').warning('logged by the page')"
    page = write_page(tmp_path / "page.ipynb", "seed = 0", log, "print('{}')")
    execute_page(page, tmp_path / "out.ipynb", kernel_name=kernel)
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    logged = [c for c in cells if "logged by the page" in "".join(c["source"])][0]
    assert "logged by the page" in "".join("".join(o.get("text", "")) for o in logged["outputs"])


def test_a_failing_cell_in_a_warm_kernel_raises(kernel, tmp_path):
    page = write_page(tmp_path / "page.ipynb", "seed = 0", "raise ValueError('claim failed')")
    with pytest.raises(PapermillExecutionError, match="claim failed"):
        execute_page(page, tmp_path / "out.ipynb", kernel_name=kernel)


def test_warm_kernels_can_be_turned_off():
    with warm_kernels(enabled=False) as name:
        assert name == "python3"
