"""Plugin backends with planted training bugs (loaded with --case-file): the
train verdict must catch them."""

from harness import Backend, register_backend
from harness.engine.training import train_in_process


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
