"""The training loop every train cell shares: the case's train spec, the data
and loss of each step, optimizers, the step loop (``Trainer``), and the fp64
reference training with its sensitivity (docs/training.md). Backends with their
own loop (ddp) drive the same ``Trainer``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree

from torchparity.axes.devices import Device, get_device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision, get_precision
from torchparity.cases.call_args import as_positional
from torchparity.cases.case import Case
from torchparity.cases.inputs import InputGen, cast_inputs
from torchparity.cases.outputs import flatten
from torchparity.cases.reference import build_module
from torchparity.prepare_context import PrepareContext
from torchparity.verdicts.train_drift import sensitivities

DEFAULT_STEPS = 3


@dataclass(frozen=True)
class TrainSpec:
    """What a case may declare about its training (``register_model(train=...)``).

    ``loss(output, target) -> scalar``; ``target(gen, batch)`` the
    deterministic targets of one batch (batch-first tensors); ``optimizer(params)``
    a torch optimizer (overrides ``--optimizer``). ``lightning``: the module is
    a LightningModule whose ``training_step`` and ``configure_optimizers`` drive
    the step (engine/lightning_case.py)."""

    loss: Callable[[Any, Any], torch.Tensor] | None = None
    target: Callable[[InputGen, int], Any] | None = None
    optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer] | None = None
    lightning: bool = False


@dataclass
class TrainSettings:
    """Run-wide training settings (``--train-steps``, ``--optimizer``)."""

    steps: int = DEFAULT_STEPS
    optimizer: str = "sgd"


# name -> (class, keyword arguments). Weight decay is large enough that an
# optimizer ignoring it fails the fp32 verdict (docs/training.md).
OPTIMIZER_BASES: dict[str, tuple[type, dict[str, Any]]] = {
    "sgd": (torch.optim.SGD, {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}),
    "adamw": (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.1}),
}
OPTIMIZERS = ("sgd", "sgd-foreach", "sgd-fused", "adamw", "adamw-foreach", "adamw-fused")


def make_optimizer(
    name: str, params: list[torch.nn.Parameter], reference: bool = False
) -> torch.optim.Optimizer:
    """``sgd``/``adamw`` (plain for-loop), ``-foreach`` or ``-fused``. The
    reference always uses the plain implementation: the math the variants must match."""
    base, _, variant = name.partition("-")
    cls, kwargs = OPTIMIZER_BASES[base]
    kwargs = dict(kwargs)
    if reference or not variant:
        kwargs["foreach"] = False
    else:
        kwargs[variant] = True
    return cls(params, **kwargs)


def spec_of(case: Case) -> TrainSpec:
    return case.extra.get("train") or TrainSpec()


# -- the module, the data, the loss --------------------------------------------------


def trainable_module(case: Case, seed: int) -> torch.nn.Module:
    """The case's module (deterministic weights) in train mode, dropout at p=0."""
    module = build_module(case, seed).train()
    for m in module.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.p = 0.0
        elif isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
    return module


def step_inputs(case: Case, seed: int, step: int) -> tuple:
    """The deterministic float64/int64 batch of step ``step`` (a new batch each step)."""
    return as_positional(case.make_inputs(InputGen(case.name, seed, "train", step), case.batch))


def float_leaves(output: Any) -> list[torch.Tensor]:
    return [t for t in flatten(output).tensors if t.is_floating_point()]


def is_classifier(output: Any) -> bool:
    leaves = float_leaves(output)
    return bool(leaves) and leaves[0].dim() == 2 and leaves[0].shape[1] > 1


def step_target(case: Case, seed: int, step: int, output: Any) -> Any:
    """The targets of step ``step`` for the full batch: the case's own, class
    labels for a classifier output (first float leaf [batch, classes]), else None."""
    spec = spec_of(case)
    if spec.target is not None:
        return spec.target(InputGen(case.name, seed, "target", step), case.batch)
    if is_classifier(output):
        classes = float_leaves(output)[0].shape[1]
        return InputGen(case.name, seed, "target", step).integers(0, classes, case.batch)
    return None


def default_loss(output: Any, target: Any) -> torch.Tensor:
    """Cross-entropy of a classifier output against labels; otherwise the
    mean squared output averaged over the float leaves."""
    leaves = float_leaves(output)
    if not leaves:
        raise ValueError("the output has no float tensor to train on; declare a loss (TrainSpec)")
    if target is not None:
        return F.cross_entropy(leaves[0], target)
    return sum(t.pow(2).mean() for t in leaves) / len(leaves)  # type: ignore[return-value]


def _part(x: Any, part: slice, batch: int) -> Any:
    if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[0] == batch:
        return x[part]
    if isinstance(x, tuple | list):
        return type(x)(_part(v, part, batch) for v in x)
    return x


# -- the loop ------------------------------------------------------------------------


@dataclass
class TrainTrace:
    """What a training run yields: per-step losses, the first step's
    gradients, the parameters before and after, and step times."""

    names: list[str]
    losses: list[float]
    grads: list[torch.Tensor]
    params0: list[torch.Tensor]
    params: list[torch.Tensor]
    step_s: list[float] = field(default_factory=list)  # the compared steps
    timing_s: list[float] = field(default_factory=list)  # further steps, timed
    prepare_s: float = 0.0
    columns: dict[str, Any] = field(default_factory=dict)  # backend facts for the row


def _lightning_optimizer(module: torch.nn.Module) -> torch.optim.Optimizer:
    conf = module.configure_optimizers()  # type: ignore[operator]
    if isinstance(conf, dict):
        conf = conf["optimizer"]
    if isinstance(conf, tuple | list):
        conf = conf[0]
        conf = conf[0] if isinstance(conf, tuple | list) else conf
    return conf


class Trainer:
    """One training run of a case: forward (``forward``, the backend's
    callable over ``module``'s parameters), loss, backward, optimizer step.
    ``part`` selects this process's share of each batch (ddp ranks)."""

    def __init__(
        self,
        case: Case,
        module: torch.nn.Module,
        forward: Callable[..., Any],
        precision: Precision,
        device: Device,
        seed: int,
        optimizer: str,
        reference: bool = False,
        part: slice = slice(None),
        perturb: float = 0.0,
    ) -> None:
        self.case, self.module, self.forward, self.seed = case, module, forward, seed
        self.perturb = perturb
        self.precision, self.device, self.part = precision, device, part
        self.spec = spec_of(case)
        self.names = [n for n, p in module.named_parameters() if p.requires_grad]
        self.params = [p for p in module.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"{case.name} has no trainable parameters")
        if perturb:
            _perturb_module(module, perturb, case.name, seed)
        if self.spec.lightning:
            self.optimizer = _lightning_optimizer(module)
        elif self.spec.optimizer is not None:
            self.optimizer = self.spec.optimizer(self.params)
        else:
            self.optimizer = make_optimizer(optimizer, self.params, reference)
        use_scaler = precision.autocast == torch.float16
        self.scaler = torch.amp.GradScaler(device.torch_device().type) if use_scaler else None
        self.skipped_steps = 0
        self._batches: dict[int, tuple] = {}

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.torch_device().type, dtype=self.precision.autocast)

    def batch(self, step: int) -> tuple:
        if step not in self._batches:
            inputs = step_inputs(self.case, self.seed, step)
            if self.perturb:
                inputs = tuple(
                    x * (1 + self.perturb * _signs(x, self.case.name, self.seed, "input", step, i))
                    if isinstance(x, torch.Tensor) and x.is_floating_point()
                    else x
                    for i, x in enumerate(inputs)
                )
            inputs = cast_inputs(inputs, self.precision.dtype, self.device.torch_device())
            self._batches[step] = inputs
        return self._batches[step]

    def loss(self, step: int) -> torch.Tensor:
        full = self.batch(step)
        inputs = _part(full, self.part, self.case.batch)
        with self.autocast():
            if self.spec.lightning:
                target = self._target(step, None)
                out = self.module.training_step(
                    (*inputs, _part(target, self.part, self.case.batch)), step
                )  # type: ignore[operator]
                return out["loss"] if isinstance(out, dict) else out
            output = self.forward(*inputs)
            target = _part(self._target(step, output), self.part, self.case.batch)
            return (self.spec.loss or default_loss)(output, target)

    def _target(self, step: int, output: Any) -> Any:
        target = step_target(self.case, self.seed, step, output)
        if isinstance(target, torch.Tensor):
            dtype = target.dtype if not target.is_floating_point() else self.precision.dtype
            return target.to(device=self.device.torch_device(), dtype=dtype)
        return target

    def step(self, step: int, keep_grads: bool = False) -> tuple[float, list[torch.Tensor]]:
        """One optimizer step on batch ``step``: its loss, and the gradients
        the optimizer saw (unscaled) when ``keep_grads``."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(step)
        grads: list[torch.Tensor] = []
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if keep_grads:
            grads = [
                p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                for p in self.params
            ]
        if self.scaler is not None:
            before = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.skipped_steps += int(self.scaler.get_scale() < before)
        else:
            self.optimizer.step()
        return float(loss.detach()), grads

    def snapshot(self) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params]

    def run(self, steps: int) -> TrainTrace:
        """``steps`` compared steps, each timed (device synchronised)."""
        params0 = self.snapshot()
        losses, grads, times = [], [], []
        for k in range(steps):
            self.device.synchronize()
            began = time.perf_counter()
            loss, g = self.step(k, keep_grads=(k == 0))
            self.device.synchronize()
            times.append(time.perf_counter() - began)
            losses.append(loss)
            grads = grads or g
        trace = TrainTrace(self.names, losses, grads, params0, self.snapshot(), times)
        if self.scaler is not None:
            trace.columns.update(
                amp_scale_final=self.scaler.get_scale(),
                amp_unscaled=True,
                amp_skipped_steps=self.skipped_steps,
            )
        return trace

    def time_steps(
        self, min_time: float, first: int, at_least: int = 3, at_most: int = 200
    ) -> list[float]:
        """Further steps (batches cycle) until ``min_time`` seconds: per-step times."""
        times: list[float] = []
        while len(times) < at_least or (sum(times) < min_time and len(times) < at_most):
            self.device.synchronize()
            began = time.perf_counter()
            self.step(len(times) % max(first, 1))  # the compared batches, again
            self.device.synchronize()
            times.append(time.perf_counter() - began)
        return times


class _Jitter(torch.autograd.Function):
    """Identity plus noise: ``noise`` added to the value forward and
    ``eps * rms(grad) * signs`` to the gradient backward, the size of a
    rounding error relative to the tensor's scale (not to each element, so
    values near a kink such as ReLU's 0 can cross it)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, noise: torch.Tensor, signs: torch.Tensor, eps: float
    ) -> torch.Tensor:
        ctx.save_for_backward(signs)
        ctx.eps = eps
        return x + noise

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (signs,) = ctx.saved_tensors
        return grad + ctx.eps * grad.pow(2).mean().sqrt() * signs, None, None, None


def _signs(x: torch.Tensor, *key: object) -> torch.Tensor:
    signs = InputGen(*key, "perturb").integers(0, 2, *x.shape).to(torch.float64) * 2 - 1
    return signs.to(device=x.device, dtype=x.dtype)


def _perturb_module(module: torch.nn.Module, eps: float, *key: object) -> None:
    """Weights perturbed by a relative ``eps``; every leaf module's float
    outputs and the gradients flowing back into them by ``eps`` times their
    rms (the sensitivity runs; ``eps < 0`` flips every sign)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.mul_(1 + eps * _signs(p, *key, "param", name))
    for name, leaf in module.named_modules():
        if next(leaf.children(), None) is not None:
            continue
        calls = [0]

        def hook(
            mod: torch.nn.Module, args: Any, out: Any, name: str = name, calls: list = calls
        ) -> Any:
            calls[0] += 1

            def jitter(t: Any) -> Any:
                if (
                    not isinstance(t, torch.Tensor)
                    or not t.is_floating_point()
                    or not t.requires_grad
                ):
                    return t
                noise = (
                    eps * t.detach().pow(2).mean().sqrt() * _signs(t, *key, name, calls[0], "fwd")
                )
                return _Jitter.apply(t, noise, _signs(t, *key, name, calls[0], "bwd"), abs(eps))

            return pytree.tree_map(jitter, out)

        leaf.register_forward_hook(hook)


# -- the reference -------------------------------------------------------------------

# The relative perturbation of weights and inputs that measures a case's
# sensitivity (docs/training.md): far above fp64 rounding, small enough to be linear.
PERTURBATION = 2.0**-20
_REFERENCES: dict[tuple, TrainTrace] = {}


def reference_training(
    case: Case, seed: int, steps: int, optimizer: str, perturb: float = 0.0
) -> TrainTrace:
    """The same training in fp64 eager on CPU (cached in memory per process);
    with ``perturb``, from weights and inputs perturbed by that relative amount."""
    key = (case.name, case.source, seed, steps, optimizer, perturb)
    if key not in _REFERENCES:
        module = trainable_module(case, seed).to(torch.float64)
        trainer = Trainer(
            case,
            module,
            module,
            get_precision("fp64"),
            get_device("cpu"),
            seed,
            optimizer,
            reference=True,
            perturb=perturb,
        )
        _REFERENCES[key] = trainer.run(steps)
    return _REFERENCES[key]


def sensitivity(case: Case, seed: int, steps: int, optimizer: str) -> dict[str, Any]:
    """How much the reference's losses, first gradients and update move per
    unit relative perturbation of weights and inputs (condition numbers)."""
    ref = reference_training(case, seed, steps, optimizer)
    # Two runs with opposite signs: a value within eps*rms of a kink crosses it in one of them.
    up = sensitivities(
        ref, reference_training(case, seed, steps, optimizer, PERTURBATION), PERTURBATION
    )
    down = sensitivities(
        ref, reference_training(case, seed, steps, optimizer, -PERTURBATION), PERTURBATION
    )
    return {
        "loss": [max(a, b) for a, b in zip(up["loss"], down["loss"], strict=False)],
        "grad": max(up["grad"], down["grad"]),
        "update": max(up["update"], down["update"]),
    }


@dataclass
class TrainJob:
    """What a training loop needs beyond the backend's context: the case, the
    seed, and the run's steps, optimizer and timing window. A backend with
    its own loop (``Backend.run_training``: ddp) receives this."""

    ctx: PrepareContext  # the cell, its device and precision, the backend's options
    case: Case
    seed: int
    steps: int
    optimizer: str
    min_time: float

    @property
    def cell(self) -> Cell:
        return self.ctx.cell

    @property
    def precision(self) -> Precision:
        return self.ctx.precision

    @property
    def device(self) -> Device:
        return self.ctx.device
