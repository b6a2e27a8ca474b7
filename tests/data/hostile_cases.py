"""Cases a hostile (or careless) user could write: names that look like paths or
numbers, a 5 MiB exception message, a model that starts a process and hangs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from torchparity import register_model


def _linear() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh())


def _inputs(gen, batch):
    return (gen.normal(batch, 8),)


for name in ("../../../../evil", "/tmp/torchparity-abs-evil", "nan", "a/b"):
    register_model(name, _linear, _inputs, batch=2, suites=["names"])


class Loud(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("x" * (5 << 20))


register_model("loud", Loud, _inputs, suites=["loud"])


class Spawner(torch.nn.Module):
    """Starts a child process (as a server or a compiler would), then hangs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(os.environ["TORCHPARITY_TEST_CHILD_PID"]).write_text(str(child.pid))
        time.sleep(120)
        return x


register_model("spawner", Spawner, _inputs, suites=["spawner"])


class Chatty(torch.nn.Module):
    """Prints as libraries do: a Python warning, a wall on stdout, and a line
    written straight to file descriptor 2 (as C++ code would)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import warnings

        warnings.warn("CHATTY-WARNING from a library", UserWarning, stacklevel=1)
        print("CHATTY-STDOUT Torch IR graph at exception: " + "graph(%x) " * 50)
        os.write(2, b"CHATTY-FD2 from C++\n")
        return x * 2


register_model("chatty", Chatty, _inputs, suites=["chatty"])


class Quitter(torch.nn.Module):
    """Ends the process the way $TORCHPARITY_TEST_EXIT says (sys.exit, os._exit,
    interrupt), as a careless script or library would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        how = os.environ.get("TORCHPARITY_TEST_EXIT", "")
        if how == "sys.exit":
            sys.exit(0)
        if how == "os._exit":
            os._exit(0)
        if how == "interrupt":
            raise KeyboardInterrupt
        return x


# "exits": a calm case first, so a row finished before the exit must survive it.
register_model("exits-calm", _linear, _inputs, batch=2, suites=["exits"])
register_model("exits-quitter", Quitter, _inputs, suites=["exits"])
