"""User case files for the machine-fault tests (a full or read-only disk)."""

import os

import torch

from torchparity import register_model

# An artifact (64 KiB of weights) that does not fit a small disk; its references do.
register_model(
    "wide_linear",
    lambda: torch.nn.Linear(128, 128),
    lambda gen, batch: (gen.normal(batch, 128),),
    batch=2,
    suites=["machine"],
)


class FillsTheDisk(torch.nn.Module):
    """Fills the disk holding $TORCHPARITY_TEST_FILL (another process on the
    machine, as far as the run can tell) but for one page, then fails with a
    message longer than that page: the run's next row does not fit."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = os.environ["TORCHPARITY_TEST_FILL"]
        if not os.path.exists(path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                while True:
                    os.write(fd, b"\0" * 4096)
            except OSError:
                os.ftruncate(fd, max(0, os.fstat(fd).st_size - 4096))
            finally:
                os.close(fd)
        raise RuntimeError("the disk filled while the model ran: " + "x" * 8000)


register_model(
    "a_healthy",
    lambda: torch.nn.Linear(4, 2),
    lambda gen, batch: (gen.normal(batch, 4),),
    suites=["machine-full"],
)
register_model(
    "b_fills_the_disk",
    FillsTheDisk,
    lambda gen, batch: (gen.normal(batch, 4),),
    suites=["machine-full"],
)
