"""Cases that misbehave in every way a worker can: the run must survive them all."""

import ctypes
import os
import time

import torch

from torchparity import register_model


class Abort(torch.nn.Module):
    def forward(self, x):
        os.abort()


class Segfault(torch.nn.Module):
    def forward(self, x):
        ctypes.string_at(0)  # read address 0: SIGSEGV (access violation on Windows)


class Hang(torch.nn.Module):
    def forward(self, x):
        time.sleep(600)


class RaisesInConstructor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        raise ValueError("cannot build this model")


def _inputs(gen, batch):
    return (gen.normal(batch, 4),)


for name, factory in [
    ("fault_abort", Abort),
    ("fault_segfault", Segfault),
    ("fault_hang", Hang),
    ("fault_constructor", RaisesInConstructor),
    ("fault_healthy", lambda: torch.nn.Linear(4, 2)),
]:
    register_model(name, factory, _inputs, suites=["faults"])
