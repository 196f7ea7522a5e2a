"""The training loop under DistributedDataParallel: two CPU processes (gloo) train what one process trains."""

import json

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import GPT2Config, GPT2LMHeadModel

from halluc_lib.core import distributed
from halluc_lib.core.train import TrainConfig, train

# fp32: the test checks DDP's arithmetic (a shard's gradients averaged = the global batch's) to float tolerance;
# bf16 autocast rounds each shard's products differently from the whole batch's
CONFIG = TrainConfig(steps=6, lr=1e-2, log_every=3, eval_every=3, checkpoint_every=3, seed=0, precision="fp32")


class FixedLengthBatches:
    """Sequences of one length (so a shard's mean token loss weighs like the global batch's), batch s a pure
    function of the seed."""

    def __init__(self, n=48, length=12, vocab=40, batch_size=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.data = torch.randint(1, vocab, (n, length), generator=g)
        self.batch_size, self.seed = batch_size, seed

    def batches_per_epoch(self):
        return len(self.data) // self.batch_size

    def batch(self, epoch, index):
        order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(1000 * self.seed + epoch))
        ids = self.data[order[index * self.batch_size : (index + 1) * self.batch_size]]
        return {"input_ids": ids, "labels": ids.clone()}


def tiny_gpt():
    torch.manual_seed(0)
    return GPT2LMHeadModel(
        GPT2Config(
            vocab_size=40, n_positions=16, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0
        )
    )


def _evaluated_by(model, step):
    return {"rank": distributed.rank()}


def _worker(rank, world, init_file, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        # stopped halfway by a step budget, then resumed from rank 0's checkpoint by a fresh model on every rank
        def train_from_checkpoint(model, **budget):
            return train(
                model,
                FixedLengthBatches(),
                CONFIG,
                device="cpu",
                progress=False,
                eval_fn=_evaluated_by,
                checkpoint_dir=out / "ckpt",
                **budget,
            )

        first = train_from_checkpoint(tiny_gpt(), budget_steps=3)
        model = tiny_gpt()
        result = train_from_checkpoint(model)
        facts = {
            "first_finished": first.finished,
            "steps": result.steps,
            "eval_ranks": list(result.evals["rank"]),
            "eval_steps": list(result.evals["step"]),
            "losses": list(result.history.loss),
        }
        (out / f"rank{rank}.json").write_text(json.dumps(facts))
        if rank == 0:
            torch.save(model.state_dict(), out / "ddp.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_train_the_weights_of_one_process_with_the_same_global_batch(tmp_path):
    mp.spawn(_worker, args=(2, tmp_path / "init", tmp_path), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    single = tiny_gpt()
    result = train(single, FixedLengthBatches(), CONFIG, device="cpu", progress=False)
    # float tolerance: summing a gradient in two halves rounds differently, and Adam divides by the gradient's
    # size, so a parameter whose true gradient is zero (the attention key bias: softmax ignores a shift shared by
    # all keys) moves on rounding noise — by about 2e-5 here, against weights of size 0.03-1
    for name, weight in single.state_dict().items():
        torch.testing.assert_close(ddp[name], weight, atol=1e-4, rtol=1e-3, msg=name)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1]  # every rank gets the same result back
    assert not ranks[0]["first_finished"] and ranks[0]["steps"] == 6
    assert ranks[0]["eval_ranks"] == [0, 0, 0] and ranks[0]["eval_steps"] == [0, 3, 6]  # rank 0 alone evaluates
    # the logged loss is the mean over ranks: the single process's global-batch loss
    assert ranks[0]["losses"] == pytest.approx(list(result.history.loss), rel=1e-4)


def test_shard_splits_the_global_batch_and_weighs_uneven_shards():
    batch = {"input_ids": torch.arange(10).reshape(5, 2), "labels": torch.arange(5)}
    shards = [distributed.shard(batch, r, 2) for r in (0, 1)]
    assert [s["labels"].tolist() for s, _ in shards] == [[0, 1], [2, 3, 4]]
    assert [w for _, w in shards] == [0.8, 1.2]  # mean of (w * shard mean) = global mean for per-example losses
    assert distributed.shard(batch, 0, 1) == (batch, 1.0)
    with pytest.raises(ValueError, match="cannot be shared by 8 ranks"):
        distributed.shard(batch, 0, 8)


def test_one_process_needs_no_process_group():
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    value = torch.tensor(2.0)
    assert distributed.mean_over_ranks(value) is value
