"""Plugin backends with planted training bugs (loaded with --case-file): the
train verdict must catch them."""

import torch

from torchparity import Backend, register_backend
from torchparity.backends.ddp import DDPBackend
from torchparity.cell.training import train_in_process


class IgnoresWeightDecay(Backend):
    """Trains like eager, but its optimizer step ignores weight decay."""

    name = "buggy-no-weight-decay"
    trains = True

    def prepare(self, module, example_inputs, ctx):
        return module

    def train_forward(self, module, example_inputs, ctx):
        return module

    def run_training(self, job):
        def drop_weight_decay(trainer):
            for group in trainer.optimizer.param_groups:
                group["weight_decay"] = 0.0

        return train_in_process(job, self, drop_weight_decay)


class HalfGradients(Backend):
    """Trains like eager, but scales the loss by 1/2, like a sum over ranks
    divided by the wrong world size: gradients half as large."""

    name = "buggy-half-gradients"
    trains = True

    def prepare(self, module, example_inputs, ctx):
        return module

    def train_forward(self, module, example_inputs, ctx):
        def forward(*inputs):
            out = module(*inputs)
            return out * 0.5 + out.detach() * 0.5  # same values, half the gradient

        return forward


register_backend(IgnoresWeightDecay())
register_backend(HalfGradients())


class UnsyncedRank(DDPBackend):
    """DDP whose rank 1 takes part in the all-reduce but keeps its own local
    gradients: the ranks drift apart while rank 0 still matches the reference."""

    name = "buggy-ddp-unsynced-rank"

    def configure_ddp(self, ddp, rank):
        if rank != 1:
            return

        def keep_local(state, bucket):
            local = bucket.buffer().clone()
            work = torch.distributed.all_reduce(bucket.buffer(), async_op=True)
            return work.get_future().then(lambda fut: local)

        ddp.register_comm_hook(None, keep_local)


register_backend(UnsyncedRank())
