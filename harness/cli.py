"""The command line: ``torchparity`` and ``python -m harness``.

Each command is a short pipeline of functions that return values; printing and
exit codes happen here, at the edge. Bad input raises ``UsageError``, which
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import environment
from harness import report as report_mod
from harness.backends import backend_names, get_backend
from harness.cases import SUITES, PluginSpec, RegistryError, load_all, select_cases
from harness.console import robust_standard_streams
from harness.devices import DEVICES
from harness.execute import RunSettings
from harness.matrix import Cell, expand, parse_shard, shard
from harness.precision import DEFAULT_PRECISIONS, PRECISIONS
from harness.results import RESULTS_JSONL, read_rows
from harness.runner import ENV_JSON, RUN_JSON, RunPlan, execute_plan, new_run_id, terminal_progress
from harness.timing import TimingConfig

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(message)


def _csv_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _choose(values: list[str], valid: Sequence[str], what: str) -> list[str]:
    for v in values:
        if v not in valid:
            raise UsageError(f"unknown {what} {v!r}; valid: {', '.join(valid)}")
    return values


def _add_plugin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case-file", action="append", default=[], metavar="PATH",
                   help="a Python file that registers cases or backends (repeatable)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="an importable module that registers cases or backends (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torchparity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list cases, suites, backends, devices or precisions")
    p.add_argument("what", nargs="?", default="cases",
                   choices=["cases", "suites", "backends", "devices", "precisions"])
    p.add_argument("--suite")
    _add_plugin_options(p)

    p = sub.add_parser("run", help="run a benchmark and conformance matrix")
    p.add_argument("--suite", default=None, help="suite to run (default: models)")
    p.add_argument("--case", action="append", default=[], metavar="GLOB",
                   help="only cases matching GLOB (repeatable)")
    p.add_argument("--backend", type=_csv_list, default=None, help="comma list (default: eager)")
    p.add_argument("--device", type=_csv_list, default=None,
                   help="comma list (default: every device kind; absent ones are skipped)")
    p.add_argument("--precision", type=_csv_list, default=None,
                   help=f"comma list (default: {','.join(DEFAULT_PRECISIONS)})")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: reports/<run-id>)")
    p.add_argument("--resume", action="store_true", help="finish the missing cells of --out")
    p.add_argument("--shard", default=None, metavar="i/n", help="run only shard i of n")
    p.add_argument("--min-time", type=float, default=None, help="seconds measured per cell (default 0.1)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell before it is killed (default 300)")
    p.add_argument("--seed", type=int, default=None, help="input and weight seed (default 0)")
    p.add_argument("--no-isolate", action="store_true", help="run cells in this process (no crash isolation)")
    p.add_argument("--no-cache", action="store_true", help="do not reuse prepared backend artifacts")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any cell fails, errors, crashes or times out")
    _add_plugin_options(p)

    p = sub.add_parser("report", help="render the reports of a run directory")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the run directory)")
    return parser


def _plugins(args: argparse.Namespace) -> list[PluginSpec]:
    specs: list[PluginSpec] = [("module", m) for m in args.plugin]
    for path in args.case_file:
        if not Path(path).is_file():
            raise UsageError(f"case file {path!r} does not exist")
        specs.append(("file", str(Path(path).resolve())))
    return specs


def _load(specs: list[PluginSpec]) -> None:
    try:
        load_all(specs)
    except RegistryError as exc:
        raise UsageError(str(exc)) from None


def cmd_list(args: argparse.Namespace) -> int:
    _load(_plugins(args))
    if args.what == "cases":
        try:
            cases = select_cases(args.suite)
        except RegistryError as exc:
            raise UsageError(str(exc)) from None
        for c in cases:
            print(f"{c.name:<28} {c.kind:<6} {c.description}")
    elif args.what == "suites":
        for name, members in sorted(SUITES.items()):
            print(f"{name:<12} {len(members)} cases")
    elif args.what == "backends":
        for name in backend_names():
            try:
                desc = get_backend(name).description
            except Exception as exc:  # an uninstalled optional library
                desc = f"(unavailable: {exc})"
            print(f"{name:<20} {desc}")
    elif args.what == "devices":
        for name, dev in DEVICES.items():
            reason = dev.unavailable()
            print(f"{name:<6} {'available' if reason is None else 'unavailable: ' + reason}")
    else:
        for name, prec in PRECISIONS.items():
            print(f"{name:<9} {prec.compute_dtype}")
    return EXIT_OK


def _selection(args: argparse.Namespace) -> dict:
    """The run's selection as stored in run.json; --resume reads it back."""
    out = args.out
    stored: dict = {}
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR")
        run_json = out / RUN_JSON
        if not run_json.is_file():
            raise UsageError(f"{out} is not a run directory (no {RUN_JSON}); nothing to resume")
        import json

        try:
            stored = json.loads(run_json.read_text(encoding="utf-8"))
        except ValueError:
            raise UsageError(f"{run_json} is corrupt; cannot resume") from None
    elif out is not None and (out / RESULTS_JSONL).exists():
        raise UsageError(f"{out} already holds results; use --resume or another --out")

    def pick(name: str, default):
        value = getattr(args, name)
        return value if value not in (None, [], False) else stored.get(name, default)

    return {
        "suite": pick("suite", "models"),
        "case": pick("case", []),
        "backend": pick("backend", ["eager"]),
        "device": pick("device", list(DEVICES)),
        "precision": pick("precision", list(DEFAULT_PRECISIONS)),
        "shard": pick("shard", None),
        "min_time": pick("min_time", 0.1),
        "timeout": pick("timeout", 300.0),
        "seed": pick("seed", 0),
        "isolate": not args.no_isolate if not args.resume else stored.get("isolate", not args.no_isolate),
        "no_cache": bool(args.no_cache or stored.get("no_cache", False)),
        "plugins": [list(p) for p in _plugins(args)] or stored.get("plugins", []),
    }


def plan_run(args: argparse.Namespace) -> RunPlan:
    sel = _selection(args)
    plugins: list[PluginSpec] = [tuple(p) for p in sel["plugins"]]  # type: ignore[misc]
    _load(plugins)
    try:
        cases = select_cases(sel["suite"], sel["case"])
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    backends = _choose(sel["backend"], backend_names(), "backend")
    devices = _choose(sel["device"], list(DEVICES), "device")
    precisions = _choose(sel["precision"], list(PRECISIONS), "precision")
    if sel["min_time"] <= 0 or sel["timeout"] <= 0:
        raise UsageError("--min-time and --timeout must be positive")
    cells: list[Cell] = expand(cases, devices, precisions, backends, suite=sel["suite"])
    if sel["shard"]:
        try:
            index, count = parse_shard(sel["shard"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cells = shard(cells, index, count)
    run_dir = args.out or Path("reports") / new_run_id()
    settings = RunSettings(
        seed=sel["seed"],
        timing=TimingConfig(min_time=sel["min_time"]),
        cache_dir=run_dir / "cache",
        use_artifact_cache=not sel["no_cache"],
    )
    return RunPlan(run_dir, cells, settings, plugins, sel["isolate"], sel["timeout"], sel)


def cmd_run(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    show = not args.quiet
    progress = terminal_progress() if show and sys.stderr.isatty() else None
    if show:
        print(f"torchparity: {len(plan.cells)} cells -> {plan.run_dir}", file=sys.stderr)
    try:
        rows = execute_plan(plan, progress)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; rows so far are in {plan.run_dir / RESULTS_JSONL}; "
            f"finish with: torchparity run --resume --out {plan.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    env = environment.read(plan.run_dir / ENV_JSON)
    paths = report_mod.render(rows, plan.run_dir, env)
    if show:
        print(report_mod.console_table(rows))
        print(f"results: {paths['csv']}\nreport:  {paths['html']}")
    findings = any(r.get("status") in ("fail", "error", "crash", "timeout") for r in rows)
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    all_rows: list[dict] = []
    env: dict = {}
    for run_dir in args.run_dirs:
        path = run_dir / RESULTS_JSONL
        if not path.is_file():
            raise UsageError(f"{run_dir} is not a run directory (no {RESULTS_JSONL})")
        all_rows += read_rows(path)
        if (run_dir / ENV_JSON).is_file():
            env = environment.read(run_dir / ENV_JSON)
    out = args.out or args.run_dirs[0]
    paths = report_mod.render(all_rows, out, env)
    print(f"report: {paths['html']}")
    return EXIT_OK


COMMANDS = {"list": cmd_list, "run": cmd_run, "report": cmd_report}


def main(argv: Sequence[str] | None = None) -> int:
    robust_standard_streams()  # a cp1252 console must not crash the run on a name or reason
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"torchparity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
