"""Shared fixtures: a tiny world, its tokenizer and a tiny model, small enough to train in a second."""

import pytest
import torch

from halluc_lib.core import models, world
from halluc_lib.core.tokenizer import world_tokenizer


@pytest.fixture(scope="session")
def tiny_world():
    return world.bucket_world((0, 1, 4), per_bucket=6, seed=3, n_templates=2)


@pytest.fixture(scope="session")
def tokenizer(tiny_world):
    return world_tokenizer(tiny_world)


@pytest.fixture
def tiny_gpt(tokenizer):
    torch.manual_seed(0)
    return models.tiny_gpt(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=64)
