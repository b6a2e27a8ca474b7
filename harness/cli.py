"""The command line: ``torchparity`` and ``python -m harness``.

Each command is a short pipeline of functions that return values; printing and
exit codes happen here, at the edge. Bad input raises ``UsageError``, which
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.backends import backend_names, get_backend
from harness.console import robust_standard_streams
from harness.engine.cases import SUITES, PluginSpec, RegistryError, load_all, select_cases
from harness.engine.devices import DEVICES, DeviceOptions, prepare_environment
from harness.engine.matrix import Cell, expand, parse_shard, shard
from harness.engine.pipeline import RunSettings
from harness.engine.precision import DEFAULT_PRECISIONS, PRECISIONS
from harness.engine.rounds import DEFAULT_ROUNDS, DEFAULT_TIME_BUDGET, RoundsConfig
from harness.engine.runner import RunPlan, execute_plan, new_run_id, terminal_progress
from harness.engine.timing import TimingConfig
from harness.reporting import compare as compare_mod
from harness.reporting import merge
from harness.reporting import report as report_mod
from harness.rundir import RunDir, RunDirError
from harness.status import BAD_STATUSES

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
                   help="comma list (default: every device kind; absent ones are skipped); "
                        "'present': the devices this machine has, absent ones one line, no rows")
    p.add_argument("--precision", type=_csv_list, default=None,
                   help=f"comma list (default: {','.join(DEFAULT_PRECISIONS)})")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: reports/<run-id>)")
    p.add_argument("--resume", action="store_true", help="finish the missing cells of --out")
    p.add_argument("--shard", default=None, metavar="i/n", help="run only shard i of n")
    p.add_argument("--min-time", type=float, default=None, help="seconds measured per cell (default 0.1)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per cell before it is killed (default 300)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"timing rounds per cell, interleaved over the run (default {DEFAULT_ROUNDS}; 1: one window)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help=f"no further timing round starts past this run time (default {DEFAULT_TIME_BUDGET:g}; 0: none)")
    p.add_argument("--count-instructions", action="store_true",
                   help="cpu cells: also count user-space instructions per call under valgrind (slow)")
    p.add_argument("--seed", type=int, default=None, help="input and weight seed (default 0)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads in workers (default: torch's default)")
    p.add_argument("--tf32", action="store_true",
                   help="cuda: allow TF32 matmuls/convolutions (off by default for conformance)")
    p.add_argument("--cudnn-benchmark", action="store_true", help="cuda: enable cuDNN autotuning")
    p.add_argument("--mps-fallback", action="store_true",
                   help="mps: let unsupported ops fall back to the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1)")
    p.add_argument("--no-isolate", action="store_true", help="run cells in this process (no crash isolation)")
    p.add_argument("--no-cache", action="store_true", help="do not reuse prepared backend artifacts")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="reference and backend-artifact cache, shareable between runs "
                        "(default: RUN_DIR/cache)")
    p.add_argument("--backend-option", action="append", default=[], metavar="BACKEND.KEY=VALUE",
                   help="an option for one backend, e.g. onnxruntime.opset=18 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any cell fails, errors, crashes or times out")
    _add_plugin_options(p)

    p = sub.add_parser("fuzz", help="search for inputs on which backends disagree on ops (hypothesis)")
    p.add_argument("--op", action="append", default=[], metavar="GLOB",
                   help="only ops matching GLOB (repeatable; default: every op)")
    p.add_argument("--backend", type=_csv_list, default=["eager"], help="comma list (default: eager)")
    p.add_argument("--device", type=_csv_list, default=["cpu"], help="comma list (default: cpu)")
    p.add_argument("--precision", type=_csv_list, default=["fp32"], help="comma list (default: fp32)")
    p.add_argument("--examples", type=int, default=None, help="examples per property (default: the profile's)")
    p.add_argument("--profile", default="ci", help="ci (bounded, derandomized), dev or deep (default ci)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: reports/<run-id>)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="backend artifacts kept between fuzz runs (default: none; within a run "
                        "each input signature is prepared once)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 on any new divergence or error (known ones, marked, are xfail)")
    _add_plugin_options(p)

    p = sub.add_parser("report", help="render the reports of a run directory")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write (default: the run directory; reports/merged-<id> for several)")

    p = sub.add_parser("compare", help="compare a run with a baseline run; optionally gate on regressions")
    p.add_argument("baseline", type=Path, metavar="BASELINE_DIR")
    p.add_argument("current", type=Path, metavar="CURRENT_DIR")
    p.add_argument("--fail-on", default=None, metavar="throughput=N%,instructions=N%,drift,status,noisy",
                   help="exit 1 when a cell regresses in any of these (the CI gate)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for compare.md and compare.html (default: CURRENT_DIR)")
    p.add_argument("--noise-floor", type=float, default=None, metavar="PERCENT",
                   help=f"the least noise floor: changes below it are always noise (default "
                        f"{compare_mod.NOISE_FLOOR:.0%}; the floor in use is derived from the runs' rounds)")
    p.add_argument("--normalize", action="store_true",
                   help="divide each round median by the calibration workload timed in the same window")
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


def parse_backend_options(texts: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["onnxruntime.opset=18", ...]`` -> ``{"onnxruntime": {"opset": "18"}}``,
    checked against the registered backends and the keys each one reads."""
    options: dict[str, dict[str, str]] = {}
    for text in texts:
        target, sep, value = text.partition("=")
        backend, dot, key = target.rpartition(".")
        if not sep or not dot or not backend or not key:
            raise UsageError(f"malformed --backend-option {text!r}; expected BACKEND.KEY=VALUE")
        _choose([backend], backend_names(), "backend")
        known = get_backend(backend).options
        if known is not None and key not in known:
            raise UsageError(
                f"unknown option {key!r} for backend {backend!r}; valid: {', '.join(known) or 'none'}"
            )
        options.setdefault(backend, {})[key] = value.strip()
    return options


def _selection(args: argparse.Namespace) -> dict:
    """The run's selection as stored in run.json; --resume reads it back."""
    out = args.out
    stored: dict = {}
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR")
        try:
            stored = RunDir(out).read_selection()
        except RunDirError as exc:
            raise UsageError(f"{exc}; nothing to resume") from None
    elif out is not None and RunDir(out).has_results():
        raise UsageError(f"{out} already holds results; use --resume or another --out")

    def pick(name: str, default):
        value = getattr(args, name)
        given = value is not None and value is not False and value != []  # 0 is a value (--rounds 0)
        return value if given else stored.get(name, default)

    return {
        "suite": pick("suite", "models"),
        "case": pick("case", []),
        "backend": pick("backend", ["eager"]),
        "device": pick("device", list(DEVICES)),
        "precision": pick("precision", list(DEFAULT_PRECISIONS)),
        "shard": pick("shard", None),
        "min_time": pick("min_time", 0.1),
        "timeout": pick("timeout", 300.0),
        "rounds": pick("rounds", DEFAULT_ROUNDS),
        "time_budget": pick("time_budget", DEFAULT_TIME_BUDGET),
        "count_instructions": pick("count_instructions", False),
        "seed": pick("seed", 0),
        "threads": pick("threads", None),
        "tf32": pick("tf32", False),
        "cudnn_benchmark": pick("cudnn_benchmark", False),
        "mps_fallback": pick("mps_fallback", False),
        "isolate": not args.no_isolate if not args.resume else stored.get("isolate", not args.no_isolate),
        "no_cache": bool(args.no_cache or stored.get("no_cache", False)),
        "cache_dir": str(args.cache_dir) if args.cache_dir else stored.get("cache_dir"),
        "backend_option": pick("backend_option", []),
        "plugins": [list(p) for p in _plugins(args)] or stored.get("plugins", []),
    }


def present_devices(devices: list[str]) -> tuple[list[str], dict[str, str]]:
    """``["present"]`` -> the available device kinds and {absent kind: why}; other lists unchanged."""
    if devices != ["present"]:
        return devices, {}
    reasons = {name: dev.unavailable() for name, dev in DEVICES.items()}
    return [n for n, r in reasons.items() if r is None], {n: r for n, r in reasons.items() if r}


def device_options_for(sel: dict, devices: list[str]) -> DeviceOptions:
    """Device flags, refused when the device they apply to is not selected."""
    for flag, device in (("tf32", "cuda"), ("cudnn_benchmark", "cuda"), ("mps_fallback", "mps")):
        if sel[flag] and device not in devices:
            option = "--" + flag.replace("_", "-")
            raise UsageError(f"{option} applies to the {device} device; add --device {device}")
    return DeviceOptions(sel["tf32"], sel["cudnn_benchmark"], sel["mps_fallback"])


def plan_run(args: argparse.Namespace) -> RunPlan:
    sel = _selection(args)
    plugins: list[PluginSpec] = [tuple(p) for p in sel["plugins"]]  # type: ignore[misc]
    _load(plugins)
    try:
        cases = select_cases(sel["suite"], sel["case"])
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    backends = _choose(sel["backend"], backend_names(), "backend")
    devices, sel["absent_devices"] = present_devices(sel["device"])
    devices = _choose(devices, list(DEVICES), "device")
    precisions = _choose(sel["precision"], list(PRECISIONS), "precision")
    if sel["min_time"] <= 0 or sel["timeout"] <= 0:
        raise UsageError("--min-time and --timeout must be positive")
    if sel["rounds"] < 1 or sel["time_budget"] < 0:
        raise UsageError("--rounds must be at least 1 and --time-budget not negative")
    if sel["threads"] is not None and sel["threads"] < 1:
        raise UsageError("--threads must be at least 1")
    device_options = device_options_for(sel, devices)
    prepare_environment(device_options)  # before any worker starts torch
    cells: list[Cell] = expand(cases, devices, precisions, backends, suite=sel["suite"])
    if sel["shard"]:
        try:
            index, count = parse_shard(sel["shard"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        cells = shard(cells, index, count)
    backend_options = parse_backend_options(sel["backend_option"])
    run_dir = args.out or Path("reports") / new_run_id()
    settings = RunSettings(
        seed=sel["seed"],
        timing=TimingConfig(min_time=sel["min_time"]),
        cache_dir=Path(sel["cache_dir"]).resolve() if sel["cache_dir"] else RunDir(run_dir).default_cache,
        use_artifact_cache=not sel["no_cache"],
        threads=sel["threads"],
        device_options=device_options,
        backend_options=backend_options,
        output_dir=run_dir,
    )
    rounds = RoundsConfig(sel["rounds"], sel["time_budget"] or None)
    return RunPlan(run_dir, cells, settings, plugins, sel["isolate"], sel["timeout"], sel, rounds,
                   sel["count_instructions"])  # fmt: skip


def cmd_run(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    show = not args.quiet
    progress = terminal_progress() if show and sys.stderr.isatty() else None
    if show:
        print(f"torchparity: {len(plan.cells)} cells -> {plan.run_dir}", file=sys.stderr)
        absent = plan.selection.get("absent_devices") or {}
        if absent:
            print("torchparity: absent devices (not run): "
                  + "; ".join(f"{d}: {why}" for d, why in absent.items()), file=sys.stderr)  # fmt: skip
    try:
        rows = execute_plan(plan, progress)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; rows so far are in {RunDir(plan.run_dir).results_jsonl}; "
            f"finish with: torchparity run --resume --out {plan.run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    paths = report_mod.render(rows, plan.run_dir, RunDir(plan.run_dir).read_env())
    if show:
        print(report_mod.console_table(rows))
        print(f"results: {paths['csv']}\nreport:  {paths['html']}")
    findings = any(r.get("status") in BAD_STATUSES for r in rows)
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK


def plan_fuzz(args: argparse.Namespace) -> tuple[list, object, Path, list[PluginSpec]]:
    """Check the fuzz options; return (targets, profile, run dir, plugins)."""
    from harness.engine.cases import CASES
    from harness.fuzzing import properties as fuzz

    plugins = _plugins(args)
    _load(plugins)
    if args.profile not in fuzz.PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; valid: {', '.join(fuzz.PROFILES)}")
    if args.examples is not None and args.examples < 1:
        raise UsageError("--examples must be at least 1")
    ops = [c for c in CASES.values() if c.kind == "op"]
    if args.op:
        names = [c.name for c in ops]
        for pattern in args.op:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
                raise UsageError(f"no op matches {pattern!r}; valid: {', '.join(names) or 'none'}")
        ops = [c for c in ops if any(fnmatch.fnmatchcase(c.name, p) for p in args.op)]
    backends = _choose(args.backend, backend_names(), "backend")
    devices = _choose(args.device, list(DEVICES), "device")
    precisions = _choose(args.precision, list(PRECISIONS), "precision")
    if args.out is not None and RunDir(args.out).has_results():
        raise UsageError(f"{args.out} already holds results; choose another --out")
    targets = [fuzz.Target(c, b, d, p) for c in ops for d in devices for b in backends
               for p in precisions]
    run_dir = args.out or Path("reports") / new_run_id()
    return targets, fuzz.PROFILES[args.profile], run_dir, plugins


def cmd_fuzz(args: argparse.Namespace) -> int:
    from harness.fuzzing import properties as fuzz

    targets, profile, run_dir, plugins = plan_fuzz(args)
    show = not args.quiet
    progress = terminal_progress() if show and sys.stderr.isatty() else None
    if show:
        print(f"torchparity fuzz: {len(targets)} properties, profile {profile.name} -> {run_dir}",
              file=sys.stderr)
    try:
        rows, found = fuzz.fuzz_run(targets, profile, run_dir, args.examples, plugins, progress,
                                    args.cache_dir.resolve() if args.cache_dir else None)
    except KeyboardInterrupt:
        print(f"\ninterrupted; properties so far are in {RunDir(run_dir).results_jsonl}", file=sys.stderr)
        return EXIT_INTERRUPTED
    paths = report_mod.render(rows, run_dir, RunDir(run_dir).read_env())
    if show:
        print(report_mod.frame_counts_line(rows))
        if found:
            table = fuzz.divergences_frame(found)[["op", "backend", "precision", "status", "reason"]]
            print(report_mod.markdown_table(table))
        print(f"divergences: {RunDir(run_dir).divergences_csv} ({len(found)})\nreport:      {paths['html']}")
    findings = any(r.get("status") in ("fail", "error") for r in rows)
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    try:
        runs = merge.load_runs(args.run_dirs)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    # Merged rows must not overwrite one run's own results.csv: a new directory.
    default = args.run_dirs[0] if len(runs) == 1 else Path("reports") / f"merged-{new_run_id()}"
    paths = report_mod.render_runs(runs, args.out or default)
    print(f"report: {paths['html']}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    gate = None
    if args.fail_on is not None:
        try:
            gate = compare_mod.parse_fail_on(args.fail_on)
        except compare_mod.FailOnError as exc:
            raise UsageError(str(exc)) from None
    noise = compare_mod.NOISE_FLOOR
    if args.noise_floor is not None:
        if not 0 <= args.noise_floor < 100:
            raise UsageError("--noise-floor must be a percentage in [0, 100)")
        noise = args.noise_floor / 100.0
    try:
        base, cur = merge.load_run(args.baseline), merge.load_run(args.current)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    comparison = compare_mod.compare_runs(base.rows, cur.rows, base.env, cur.env, noise_floor=noise,
                                          normalize=args.normalize)  # fmt: skip
    title = f"torchparity compare: {args.baseline.name} -> {args.current.name}"
    out = RunDir(args.out or args.current).create()
    out.write_text(out.compare_md.name, compare_mod.markdown(comparison, title, gate))
    out.write_text(out.compare_html.name, compare_mod.html_page(comparison, title, gate))
    for warning in comparison.warnings:
        print(f"torchparity: warning: {warning}", file=sys.stderr)
    print(compare_mod.markdown(comparison, title, gate))
    print(f"compare: {out.compare_md}, {out.compare_html}", file=sys.stderr)
    return EXIT_FINDINGS if gate is not None and comparison.failed(gate) else EXIT_OK


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "fuzz": cmd_fuzz,
    "report": cmd_report,
    "compare": cmd_compare,
}


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
