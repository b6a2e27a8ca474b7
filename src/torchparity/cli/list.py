"""``torchparity list``: cases, suites, backends, devices or precisions."""

from __future__ import annotations

import argparse
from typing import Any

from torchparity._core.console import plural
from torchparity.axes.devices import DEVICES
from torchparity.axes.precision import PRECISIONS
from torchparity.backends import backend_names, get_backend
from torchparity.cases.case import CASES, SUITES, RegistryError, select_cases
from torchparity.cli.common import EXIT_OK, UsageError, load, plugins
from torchparity.cli.options import LIST_OPTIONS, add_options, add_plugin_options

WHAT = ["cases", "suites", "backends", "devices", "precisions"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list cases, suites, backends, devices or precisions")
    p.add_argument("what", nargs="?", default="cases", choices=WHAT)
    add_options(p, LIST_OPTIONS, with_defaults=True)
    add_plugin_options(p)


def _cases(suites: list[str]) -> None:
    try:
        cases = [c for s in suites or [None] for c in select_cases(s)]
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    for c in {c.name: c for c in cases}.values():
        print(f"{c.name:<28} {c.kind:<6} {c.description}")


def _suites() -> None:
    width = max((len(name) for name in SUITES), default=0)
    for name, members in sorted(SUITES.items()):
        # A suite that cannot load here holds only placeholder cases saying why.
        unavailable = [CASES[m].extra.get("unavailable") for m in members if m in CASES]
        why = unavailable[0] if unavailable and all(unavailable) else None
        print(
            f"{name:<{width}} unavailable: {why}"
            if why
            else f"{name:<{width}} {plural(len(members), 'case')}"
        )


def _backends() -> None:
    for name in backend_names():
        try:
            desc = get_backend(name).description
        except Exception as exc:  # noqa: BLE001 - an uninstalled optional library
            desc = f"(unavailable: {exc})"
        print(f"{name:<20} {desc}")


def main(args: argparse.Namespace) -> int:
    load(plugins(args))
    if args.what == "cases":
        _cases(args.suite)
    elif args.what == "suites":
        _suites()
    elif args.what == "backends":
        _backends()
    elif args.what == "devices":
        for name, dev in DEVICES.items():
            reason = dev.unavailable()
            print(f"{name:<6} {'available' if reason is None else 'unavailable: ' + reason}")
    else:
        for name, prec in PRECISIONS.items():
            quant = f" quantized to int8 ({prec.quant}); fp32 in and out" if prec.quant else ""
            print(f"{name:<9} {prec.compute_dtype}{quant}")
    return EXIT_OK
