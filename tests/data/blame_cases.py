"""Cases whose failures are their own, or the environment's (loaded with --case-file)."""

import torch

from torchparity import register_model


class Misspelt(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)
        self.linear.wieght.data.zero_()  # an AttributeError of the case's own making


def _needs_a_missing_library() -> torch.nn.Module:
    import torchparity_no_such_optional_dependency  # noqa: F401

    return torch.nn.Linear(4, 2)


def _bad_inputs(gen, batch):
    return (gen.normal(batch, 4).reshape(batch, 5),)  # a shape that cannot hold the values


register_model(
    "misspelt_module", Misspelt, lambda gen, batch: (gen.normal(batch, 4),), suites=["blame"]
)
register_model(
    "missing_dependency",
    _needs_a_missing_library,
    lambda gen, batch: (gen.normal(batch, 4),),
    suites=["blame"],
)
register_model(
    "bad_input_factory", lambda: torch.nn.Linear(4, 2), _bad_inputs, batch=2, suites=["blame"]
)
