import json
import sys
import tarfile
import time
from pathlib import Path

import pytest

from halluc_lib.core import sweeps
from halluc_lib.tools import device_kit, sweep


def _run(seed, device):
    return {"page": "ch02_1_exposure", "seed": seed, "scale": "full", "device": device, "claims": []}


def test_project_names_are_compared_as_pep_503_normalises_them():
    assert device_kit.project_name("huggingface_hub-1.3.0-py3-none-any.whl") == "huggingface-hub"
    assert device_kit.project_name("/x/Jupyter.Client-8.6-py3-none-any.whl") == "jupyter-client"
    with pytest.raises(ValueError, match="wheel_file must name a .whl file"):
        device_kit.project_name("papermill-2.7.tar.gz")


def test_only_what_the_image_lacks_is_carried_but_the_pinned_hugging_face_stack_is():
    wheels = [
        "numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl",  # in the image
        "papermill-2.7.0-py3-none-any.whl",  # not in the image
        "transformers-5.24.0-py3-none-any.whl",  # in the image, but the book's version is carried
    ]
    assert device_kit.wheels_to_carry(wheels) == [wheels[1], wheels[2]]
    assert "papermill" not in device_kit.DEVICE_IMAGE and "numpy" in device_kit.DEVICE_IMAGE


def test_a_chapter_stays_in_one_lane_in_reading_order_and_chapter_1_rides_with_2():
    pages = ["ch01_concepts", "ch02_1_exposure", "ch04_1_balancing", "ch04_2_adversarial", "ch04_7_tradeoffs"]
    assert device_kit.lanes(pages) == [pages[:2], pages[2:]]
    with pytest.raises(ValueError, match="pages: 'preface' is not a page slug"):
        device_kit.lanes(["preface"])


def test_cores_are_dealt_round_robin_and_shared_only_when_there_are_more_lanes():
    assert device_kit.core_shares(2, [0, 1, 2, 3, 4]) == [[0, 2, 4], [1, 3]]
    assert device_kit.core_shares(3, [0, 1]) == [[0], [1], [0]]
    assert device_kit.core_shares(2, []) == [[], []]


def test_what_the_device_packed_comes_home_as_its_gpu_runs_only(tmp_path):
    there, here, out = tmp_path / "there", tmp_path / "here", tmp_path / "out"
    sweep.merge_run("ch02_1_exposure", _run(0, "cuda"), there)
    sweep.merge_run("ch02_1_exposure", _run(1, "cuda"), there)
    sweep.merge_run("ch02_1_exposure", _run(0, "cpu") | {"claims": ["from the device's copy"]}, there)
    sweep.merge_run("ch02_1_exposure", _run(0, "cpu"), here)  # this checkout's CPU run

    tarball = device_kit.pack(there, out)
    assert [p.name for p in out.iterdir()] == [device_kit.TARBALL], "no temporary file is left beside it"
    with tarfile.open(tarball) as tar:
        assert tar.getnames() == ["ch02_1_exposure.json"]

    assert device_kit.unpack(tarball, here) == [("ch02_1_exposure", 0), ("ch02_1_exposure", 1)]
    runs = sweeps.load_sweep("ch02_1_exposure", here)["runs"]
    assert [(r["device"], r["seed"]) for r in runs] == [("cpu", 0), ("cuda", 0), ("cuda", 1)]
    assert runs[0]["claims"] == [], "the CPU run here is kept, not the device's copy of it"
    assert device_kit.unpack(tarball, here) == [], "runs already here are not merged again"
    assert oct(tarball.stat().st_mode & 0o777) == "0o644"


def test_lanes_run_at_once_and_those_past_the_deadline_are_stopped(tmp_path):
    ticks = []
    log = open(tmp_path / "log", "w")
    commands = [
        [sys.executable, "-c", "print('fast')"],
        [sys.executable, "-c", "import time; time.sleep(60)"],
        [sys.executable, "-c", "raise SystemExit(3)"],
    ]
    start = time.monotonic()
    codes = device_kit.run_lanes(commands, deadline=2.0, every=0.5, on_tick=lambda: ticks.append(1), log=log)
    log.close()
    assert codes == [0, None, 3]
    assert time.monotonic() - start < 30, "the sleeping lane was stopped, not waited for"
    assert len(ticks) >= 2, "the results were packed while the lanes ran and once at the end"
    assert "fast" in (tmp_path / "log").read_text()


def test_a_failing_tick_never_leaves_a_lane_running(tmp_path, capsys):
    def broken_pack():
        raise OSError("disk full")

    start = time.monotonic()
    with open(tmp_path / "log", "w") as log:
        codes = device_kit.run_lanes(
            [[sys.executable, "-c", "import time; time.sleep(60)"]],
            deadline=1.0,
            every=0.2,
            on_tick=broken_pack,
            log=log,
            envs=[{"LANE": "x"}],
        )
    assert codes == [None] and time.monotonic() - start < 30
    assert "on_tick failed: OSError('disk full')" in capsys.readouterr().err


def test_the_exit_status_tells_a_failure_from_a_deadline():
    assert device_kit.exit_status([0, 0]) == 0
    assert device_kit.exit_status([0, None]) == 2
    assert device_kit.exit_status([None, 1]) == 1


def test_the_sweep_command_refuses_a_deadline_it_could_not_keep(capsys):
    with pytest.raises(SystemExit):
        device_kit.main(["sweep", "--out", "x", "--deadline", "10"])
    assert "--deadline must be more than 30 seconds; got 10.0" in capsys.readouterr().err


def test_unpack_reads_the_page_from_the_file_not_the_member_name(tmp_path):
    there, here = tmp_path / "there", tmp_path / "here"
    there.mkdir()
    (there / "renamed.json").write_text(json.dumps({"page": "ch02_1_exposure", "runs": [_run(2, "cuda")]}))
    assert device_kit.unpack(device_kit.pack(there, tmp_path / "out"), here) == [("ch02_1_exposure", 2)]
    assert sweeps.sweep_path("ch02_1_exposure", here).exists()


def test_the_downloaded_wheels_are_filtered_and_must_fit_a_device_call(tmp_path, monkeypatch):
    def fake_pip(cmd, check):
        dest = Path(cmd[cmd.index("-d") + 1])
        assert cmd[cmd.index("--python-version") + 1] == "3.12", "wheels for the device's Python, not this one"
        for name in ("numpy-2.4.6-cp312-cp312-manylinux_2_28_x86_64.whl", "papermill-2.7.0-py3-none-any.whl"):
            (dest / name).write_bytes(b"x" * size)

    monkeypatch.setattr(device_kit.subprocess, "run", fake_pip)
    dest = tmp_path / ".whl"
    dest.mkdir()
    (dest / "old-1.0-py3-none-any.whl").write_bytes(b"")
    size = 10
    assert [p.name for p in device_kit.download_wheels(dest)] == ["papermill-2.7.0-py3-none-any.whl"]
    size = (device_kit.CARRY_LIMIT_MIB + 1) * 2**20
    with pytest.raises(RuntimeError, match="more than a device call carries"):
        device_kit.download_wheels(dest)


def test_the_device_sweep_runs_each_chapter_at_each_seed_in_its_own_lane(tmp_path, monkeypatch):
    started = {}

    def fake_lanes(commands, *, deadline, on_tick, log, envs):
        started.update(commands=commands, deadline=deadline, envs=envs)
        log.write("seed 0 ch02_4_imbalance: 1 s ok\n")
        return [0] * len(commands)

    monkeypatch.setattr(device_kit, "install_wheels", lambda: None)
    monkeypatch.setattr(device_kit, "run_lanes", fake_lanes)
    monkeypatch.setattr(device_kit, "BOOK_ENVIRONMENT", {})
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HALLUC_COMMIT", raising=False)
    codes = device_kit.device_sweep(
        tmp_path, deadline=100, seeds=[0, 1], scale="full", device="cuda", pages=None, warm=False, commit="abc"
    )
    lanes = [(c[c.index("--seeds") + 1], c[c.index("--pages") + 1 :]) for c in started["commands"]]
    assert codes == [0] * len(lanes) and 80 < started["deadline"] < 100
    assert ("1", ["ch01_concepts", "ch02_1_exposure"]) == (lanes[1][0], lanes[1][1][:2])
    assert all("--cold-kernels" in c for c in started["commands"])
    caches = [env["HALLUC_CACHE"] for env in started["envs"]]
    assert len(set(caches)) == len(lanes) and all(c.startswith(str(tmp_path / "cache")) for c in caches)
    assert device_kit.os.environ["HALLUC_COMMIT"] == "abc", "the records name the commit typed in"
    chapter_4 = [pages for seed, pages in lanes if seed == "0" and pages[0].startswith("ch04")]
    assert chapter_4 == [sorted(chapter_4[0])] and chapter_4[0][-1] == "ch04_7_tradeoffs"
    assert not any(p in device_kit.NEEDS_MINILM for _, pages in lanes for p in pages), "MiniLM is not carried"
    with pytest.raises(ValueError, match=r"pages: unknown \['ch99_x'\]"):
        device_kit.device_sweep(tmp_path, deadline=100, seeds=[0], scale="full", device="cuda", pages=["ch99_x"])


def test_installing_the_wheels_puts_them_and_the_checkout_first_on_every_path(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no wheels in .*: run `make device-wheels` here and carry"):
        device_kit.install_wheels(tmp_path / "no-wheels", tmp_path / "site")
    ran = []
    monkeypatch.setattr(device_kit.subprocess, "run", lambda cmd, check: ran.append(cmd))
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    monkeypatch.setattr(device_kit.sys, "path", list(device_kit.sys.path))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "papermill-2.7.0-py3-none-any.whl").write_bytes(b"")
    device_kit.install_wheels(tmp_path / "w", tmp_path / "site")
    assert ran[0][-1].endswith("papermill-2.7.0-py3-none-any.whl") and "--no-index" in ran[0]
    assert ran[1][-1] == device_kit.IMPORT_CHECK, "the libraries are checked before any lane starts"
    assert device_kit.os.environ["PYTHONPATH"].split(":") == [
        str(tmp_path / "site"),
        str(device_kit.ROOT),
        "/elsewhere",
    ]
    assert device_kit.sys.path[:2] == [str(tmp_path / "site"), str(device_kit.ROOT)]
