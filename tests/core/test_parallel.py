import os
import sys

import pytest
import torch

from halluc_lib.core import batching, models, parallel, train
from halluc_lib.core.world import build_corpus


def _training_jobs(tiny_world, tokenizer):
    """Two independent trainings, on different data and from different seeds, as a page would run them."""
    corpus = build_corpus(tiny_world)

    def job(seed, docs):
        def fit():
            torch.manual_seed(seed)  # built inside the job: a forked process seeds its own generator
            model = models.tiny_gpt(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=64)
            batches = batching.LMBatches.from_texts(docs, tokenizer, batch_size=4, seed=seed)
            result = train.train(model, batches, train.TrainConfig(steps=6, seed=seed), device="cpu", progress=False)
            return model, result

        return fit

    return [job(0, corpus), job(1, corpus[::-1])]


def test_side_by_side_gives_the_one_thread_results_bit_for_bit(tiny_world, tokenizer):
    jobs = _training_jobs(tiny_world, tokenizer)
    together = parallel.side_by_side(jobs, device="cpu")
    alone = parallel.run_one_by_one(jobs)
    assert len(together) == len(alone) == 2
    for (m1, r1), (m2, r2) in zip(together, alone, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
        assert r1.history.loss.tolist() == r2.history.loss.tolist()
    # the two jobs trained different models, returned in the order given
    assert not torch.equal(together[0][0].lm_head.weight, together[1][0].lm_head.weight)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jobs run in forked processes on Linux only")
def test_every_job_runs_with_one_thread_in_another_process_and_the_threads_come_back():
    before = torch.get_num_threads()
    jobs = [lambda: (torch.get_num_threads(), os.getpid())] * 2  # closures: nothing is pickled on the way in
    together = parallel.side_by_side(jobs, device="cpu")
    assert [threads for threads, _ in together] == [1, 1]
    assert os.getpid() not in {pid for _, pid in together}
    assert parallel.run_one_by_one(jobs[:1])[0] == (1, os.getpid())
    assert parallel.side_by_side(jobs[:1], device="cpu")[0] == (1, os.getpid())  # one job: no process to start
    assert torch.get_num_threads() == before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jobs run in forked processes on Linux only")
def test_a_job_may_run_jobs_of_its_own():
    def outer():
        return parallel.side_by_side([torch.get_num_threads, os.getpid], device="cpu")

    (threads, pid), _ = parallel.side_by_side([outer, outer], device="cpu")
    assert threads == 1 and pid != os.getpid()  # run in the job's own process, one after another


def test_a_jobs_error_is_raised_here():
    def broken():
        raise ValueError("lr must be > 0; got -1")

    with pytest.raises(ValueError, match="lr must be > 0"):
        parallel.side_by_side([lambda: 1, broken], device="cpu")


def test_side_by_side_checks_its_jobs():
    assert parallel.side_by_side([], device="cpu") == []
    with pytest.raises(TypeError, match="jobs must be functions without arguments"):
        parallel.side_by_side([1, 2], device="cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="jobs run in forked processes on Linux only")
def test_a_worker_draws_no_progress_bar_and_this_process_does():
    def bar_disabled():
        bar = train._progress_bar(10, 0, enabled=True)
        disabled = bar.disable
        bar.close()  # (a closed bar reads as disabled)
        return parallel.in_worker(), disabled

    assert parallel.side_by_side([bar_disabled] * 2, device="cpu") == [(True, True)] * 2
    assert bar_disabled() == (False, False)
