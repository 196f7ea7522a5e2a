import dataclasses

import pytest

from halluc_lib.chapters import exposure
from halluc_lib.core import cache
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets.biographies import BiographyConfig

TINY = BiographyConfig(buckets=(0, 1, 8), per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=12, eval_every=6)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_config_holds_both_regimes_at_each_scale():
    quick, full = exposure.Config.for_scale("quick"), exposure.Config.for_scale("full")
    assert quick.crisp == BiographyConfig.for_scale("quick", "crisp")
    assert full.memorize == BiographyConfig.for_scale("full", "memorize")
    assert full.crisp.per_bucket > quick.crisp.per_bucket


def test_run_trains_both_regimes_and_asks_in_every_phrasing():
    config = exposure.Config(crisp=TINY, memorize=dataclasses.replace(TINY, steps=6))
    run = exposure.run(config, seed=0, device="cpu", progress=False)
    assert run.crisp.result.steps == 12 and run.memorize.result.steps == 6
    every = exposure.answers_in_every_phrasing(run.crisp, max_exposures=1)
    assert len(every) == 8 * 4 * TINY.n_templates
    assert not every[every.exposures == 0].phrasing_seen.any()  # never seen, so no phrasing was seen
    assert every[every.exposures == 1].phrasing_seen.any()
    with pytest.raises(TypeError, match="config must be an exposure.Config"):
        exposure.run(TINY)
