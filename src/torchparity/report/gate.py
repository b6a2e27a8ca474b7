"""The ``--fail-on`` gate's grammar: what a comparison of two runs must not show
(a throughput drop past a share, more instructions per call, worse drift, a new
failure) for ``torchparity compare`` to exit 0."""

from __future__ import annotations

from dataclasses import dataclass


class FailOnError(ValueError):
    """A malformed ``--fail-on`` value."""


@dataclass(frozen=True)
class Gate:
    """What ``--fail-on`` turns into a failure: throughput drops of at least
    ``throughput`` (a fraction; None = not gated), drift regressions, status
    regressions."""

    throughput: float | None = None
    drift: bool = False
    status: bool = False
    noisy: bool = (
        False  # fail (rather than pass with a warning) when the runs are too noisy to judge
    )
    instructions: float | None = None  # growth of instructions per call (--count-instructions runs)


GATE_KINDS = ("throughput=N%", "instructions=N%", "drift", "status", "noisy")


def parse_fail_on(text: str) -> Gate:
    """``"throughput=10%,drift,status"`` -> Gate; ``FailOnError`` names the valid forms."""
    shares: dict[str, float | None] = {"throughput": None, "instructions": None}
    drift = status = noisy = False
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip().lower()
        if name in shares:
            number = value.strip().rstrip("%")
            try:
                share = float(number) / 100.0
            except ValueError:
                raise FailOnError(
                    f"bad --fail-on item {item!r}; expected e.g. {name}=10%"
                ) from None
            if not 0 < share < 1:
                raise FailOnError(
                    f"bad --fail-on item {item!r}; the percentage must be in (0, 100)"
                )
            shares[name] = share
        elif name == "drift" and not value:
            drift = True
        elif name == "status" and not value:
            status = True
        elif name == "noisy" and not value:
            noisy = True
        else:
            raise FailOnError(f"unknown --fail-on item {item!r}; valid: {', '.join(GATE_KINDS)}")
    return Gate(shares["throughput"], drift, status, noisy, shares["instructions"])
