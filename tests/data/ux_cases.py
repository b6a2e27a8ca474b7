"""Cases for the command line's own tests (tests/test_cli_ux.py): two suites,
an error whose reason holds markup characters, and a library that warns and
logs on the console at import and while the model runs."""

import logging
import sys
import warnings

import torch

from torchparity import register_model

# A library with a console handler of its own (as transformers installs one).
_library = logging.getLogger("ux_library")
_library.addHandler(logging.StreamHandler(sys.stderr))
_library.propagate = False
_library.warning("ux library log line at import")
warnings.warn("ux library chatter at import", UserWarning, stacklevel=1)


class Chatty(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warnings.warn("ux chatter in forward", UserWarning, stacklevel=1)
        logging.getLogger("ux_other").warning("ux root-bound log line in forward")
        return self.linear(x)


class Markup(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("a < b & c > d")


register_model(
    "ux_ok", Chatty, lambda gen, batch: (gen.normal(batch, 4),), batch=2, suites=["ux_a"]
)
register_model(
    "ux_markup", Markup, lambda gen, batch: (gen.normal(batch, 4),), batch=2, suites=["ux_b"]
)
