"""Cases for the report tests: a small model, one whose output is large enough
to be stored as a sample, and one that fails with markup in its message."""

import torch

from torchparity import register_model

PLANTED = "<script>document.title='PWNED'</script><b>bold</b>"


class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError(f"planted markup {PLANTED}")


register_model(
    "rep_small",
    lambda: torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh()),
    lambda gen, batch: (gen.normal(batch, 8),),
    batch=4,
    suites=["report_demo"],
)
# 16 x 512 = 8192 output elements: more than output_store.FULL_LIMIT, stored as a sample.
register_model(
    "rep_wide",
    lambda: torch.nn.Linear(32, 512),
    lambda gen, batch: (gen.normal(batch, 32),),
    batch=16,
    suites=["report_demo"],
)
register_model(
    "rep_broken", Broken, lambda gen, batch: (gen.normal(batch, 8),), suites=["report_demo"]
)
