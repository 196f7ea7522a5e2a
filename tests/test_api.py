"""The library's public surface: one experiment API for every page, a docstring on everything public, typed
devices, and an API reference that lists every module."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("core", "datasets", "chapters")


def module_names(layer: str) -> list[str]:
    folder = ROOT / "halluc_lib" / layer
    return sorted(f"halluc_lib.{layer}.{p.stem}" for p in folder.glob("*.py") if p.name != "__init__.py")


CHAPTERS = module_names("chapters")
PUBLIC_MODULES = [name for layer in LAYERS for name in module_names(layer)]


@pytest.mark.parametrize("name", CHAPTERS)
def test_every_chapter_has_the_one_experiment_api(name):
    module = importlib.import_module(name)
    config_cls, run_cls, run = module.Config, module.Run, module.run
    assert dataclasses.is_dataclass(config_cls) and config_cls.__dataclass_params__.frozen
    assert dataclasses.is_dataclass(run_cls)
    for scale in ("quick", "full"):
        assert isinstance(config_cls.for_scale(scale), config_cls)
    with pytest.raises(ValueError, match="scale must be one of"):
        config_cls.for_scale("medium")
    params = inspect.signature(run).parameters
    assert list(params)[0] == "config"
    for keyword in ("seed", "device", "progress"):
        assert params[keyword].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}.run: {keyword} must be keyword-only"
    assert params["device"].default == "auto"
    assert inspect.signature(run).return_annotation in ("Run", run_cls)
    with pytest.raises(TypeError, match="config must be a"):
        run(object())


def _public_members(module):
    for attr, value in vars(module).items():
        if attr.startswith("_") or getattr(value, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(value) or inspect.isclass(value):
            yield attr, value


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_function_and_class_has_a_docstring(name):
    module = importlib.import_module(name)
    assert module.__doc__ and module.__doc__.strip(), f"{name} has no module docstring"
    missing = [attr for attr, value in _public_members(module) if not (value.__doc__ or "").strip()]
    # a dataclass without a docstring gets an automatic one: its signature
    missing += [
        attr
        for attr, value in _public_members(module)
        if dataclasses.is_dataclass(value) and value.__doc__.startswith(f"{value.__name__}(")
    ]
    assert not missing, f"{name}: no docstring on {sorted(set(missing))}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_device_arguments_are_typed(name):
    module = importlib.import_module(name)
    untyped = [
        attr
        for attr, value in _public_members(module)
        if inspect.isfunction(value)
        and "device" in inspect.signature(value).parameters
        and inspect.signature(value).parameters["device"].annotation is inspect.Parameter.empty
    ]
    assert not untyped, f"{name}: untyped device argument in {untyped}"


def test_one_public_name_per_concept():
    """Names that meant different things in different modules now say which thing they mean."""
    owners: dict[str, list[str]] = {}
    for name in PUBLIC_MODULES:
        for attr, _ in _public_members(importlib.import_module(name)):
            owners.setdefault(attr, []).append(name)
    assert owners.get("build_corpus") == ["halluc_lib.core.world"]  # conflicts has conflict_corpus
    for retired in ("pretrain", "simulate", "load_data"):  # pretrain_mlm, simulate_logs, load_shipped, ...
        assert retired not in owners, f"{retired} is defined in {owners[retired]}"


def test_the_api_reference_lists_every_module():
    text = "".join((ROOT / "book" / f"api_{layer}.md").read_text() for layer in LAYERS)
    listed = set(re.findall(r"\.\. automodule:: (\S+)", text))
    assert listed == set(PUBLIC_MODULES)
    toc = (ROOT / "_toc.yml").read_text()
    assert all(f"book/api_{layer}" in toc for layer in LAYERS)
