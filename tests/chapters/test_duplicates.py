import dataclasses

import pytest

from halluc_lib.chapters import duplicates
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets.secrets import SecretsConfig

TINY = SecretsConfig(
    copies=(1, 4), per_copy=3, filler_buckets=(1,), filler_per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=6
)


def test_run_reports_the_extraction_rate_per_copy_count():
    run = duplicates.run(duplicates.Config(TINY), seed=0, device="cpu", progress=False)
    assert run.rates.copies.tolist() == [1, 4]
    by_hand = run.trained.table.groupby("copies").extracted.mean()
    assert run.rates.extraction_rate.tolist() == pytest.approx(by_hand.tolist())
    with pytest.raises(TypeError, match="config must be a duplicates.Config"):
        duplicates.run(TINY)


def test_scales():
    assert duplicates.Config.for_scale("full").secrets.per_copy > duplicates.Config.for_scale("quick").secrets.per_copy
    assert dataclasses.replace(duplicates.Config(), secrets=TINY).secrets.steps == 6
