"""TorchScript, the ``trace`` route: torch.jit.trace on the example inputs,
saved and loaded back like the script route (see torchscript.py)."""

from torchparity.backends.torchscript import TorchScriptBackend

BACKEND = TorchScriptBackend(
    "torchscript-trace", "trace", "torch.jit.trace, saved and loaded back (torch.jit.save/load)"
)
