"""The command line: ``torchparity`` and ``python -m torchparity``.

Each command is a short pipeline of functions that return values; printing and
exit codes happen here, at the edge. Bad input raises ``UsageError``, which
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchparity._core import cache as cache_mod
from torchparity._core import row as row_mod
from torchparity._core.console import robust_standard_streams
from torchparity._core.files import atomic_write_text
from torchparity._core.rundir import RunDir, RunDirError, RunDirLocked
from torchparity.axes.devices import DEVICES, DeviceOptions, prepare_environment
from torchparity.axes.matrix import Cell, expand, parse_shard, shard
from torchparity.axes.precision import DEFAULT_PRECISIONS, PRECISIONS
from torchparity.axes.scheduler_env import shard_from_env
from torchparity.backends import backend_names, get_backend
from torchparity.cases.case import CASES, SUITES, PluginSpec, RegistryError, load_all, select_cases
from torchparity.cell.pipeline import RunSettings, apply_thread_settings
from torchparity.report import compare as compare_mod
from torchparity.report import export as export_mod
from torchparity.report import merge
from torchparity.report import report as report_mod
from torchparity.run.runner import (
    RunInterrupted,
    RunPlan,
    execute_plan,
    new_run_id,
    terminal_progress,
)
from torchparity.timing.rounds import DEFAULT_ROUNDS, DEFAULT_TIME_BUDGET, RoundsConfig
from torchparity.timing.timer import TimingConfig
from torchparity.train_loop import OPTIMIZERS, TrainSettings
from torchparity.verdicts import expectations

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# compare --fail-on: nothing failed, but some cells' throughput could not be judged (too noisy)
EXIT_NOT_JUDGED = 3


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        raise UsageError(message)


def _csv_list(text: str) -> list[str]:
    """A comma list, each value once (``eager,eager`` runs eager once)."""
    return list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def _positive_float(text: str) -> float:
    """A finite number above zero (0, nan and inf are refused, never defaulted)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _choose(values: list[str], valid: Sequence[str], what: str) -> list[str]:
    for v in values:
        if v not in valid:
            raise UsageError(f"unknown {what} {v!r}; valid: {', '.join(valid)}")
    return values


def _add_plugin_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--case-file",
        action="append",
        default=[],
        metavar="PATH",
        help="a Python file that registers cases or backends (repeatable)",
    )
    p.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="an importable module that registers cases or backends (repeatable)",
    )


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mode",
        type=_csv_list,
        default=None,
        help="infer, train or infer,train (default infer; see docs/training.md)",
    )
    p.add_argument(
        "--train-steps",
        type=int,
        default=None,
        help="optimizer steps a train cell compares (default 3)",
    )
    p.add_argument(
        "--optimizer",
        default=None,
        help="train cells' optimizer: sgd, sgd-foreach, sgd-fused, adamw, adamw-foreach, "
        "adamw-fused (default sgd)",
    )


def _add_list_command(sub: Any) -> None:
    p = sub.add_parser("list", help="list cases, suites, backends, devices or precisions")
    p.add_argument(
        "what",
        nargs="?",
        default="cases",
        choices=["cases", "suites", "backends", "devices", "precisions"],
    )
    p.add_argument("--suite")
    _add_plugin_options(p)


def _add_run_command(sub: Any) -> None:
    p = sub.add_parser("run", help="run a benchmark and conformance matrix")
    p.add_argument("--suite", default=None, help="suite to run (default: models)")
    p.add_argument(
        "--case",
        action="append",
        default=[],
        metavar="GLOB",
        help="only cases matching GLOB (repeatable)",
    )
    p.add_argument("--backend", type=_csv_list, default=None, help="comma list (default: eager)")
    p.add_argument(
        "--device",
        type=_csv_list,
        default=None,
        help="comma list (default: every device kind; absent ones are skipped); "
        "'present': the devices this machine has, absent ones one line, no rows",
    )
    p.add_argument(
        "--precision",
        type=_csv_list,
        default=None,
        help=f"comma list (default: {','.join(DEFAULT_PRECISIONS)})",
    )
    p.add_argument(
        "--out", type=Path, default=None, help="run directory (default: reports/<run-id>)"
    )
    p.add_argument("--resume", action="store_true", help="finish the missing cells of --out")
    p.add_argument(
        "--shard",
        default=None,
        metavar="i/n|auto",
        help="run only shard i of n; auto: from a Slurm array or Kubernetes Indexed Job "
        "(docs/scale-out.md)",
    )
    p.add_argument(
        "--min-time",
        type=_positive_float,
        default=None,
        help="seconds measured per cell (default 0.1)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        help="seconds per cell before it (and every process it started) is killed (default 300)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help=f"timing rounds per cell, interleaved over the run (default {DEFAULT_ROUNDS}; 1: one window)",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"no further timing round starts past this run time (default {DEFAULT_TIME_BUDGET:g}; 0: none)",
    )
    p.add_argument(
        "--count-instructions",
        action="store_true",
        help="cpu cells: also count user-space instructions per call under valgrind (slow)",
    )
    p.add_argument("--seed", type=int, default=None, help="input and weight seed (default 0)")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch intra-op threads in workers (default: torch's default)",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="cuda: allow TF32 matmuls/convolutions (off by default for conformance)",
    )
    p.add_argument("--cudnn-benchmark", action="store_true", help="cuda: enable cuDNN autotuning")
    p.add_argument(
        "--mps-fallback",
        action="store_true",
        help="mps: let unsupported ops fall back to the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1)",
    )
    p.add_argument(
        "--no-isolate", action="store_true", help="run cells in this process (no crash isolation)"
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="no shared cache: artifacts rebuilt, references kept in RUN_DIR/cache",
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="reference and backend-artifact cache, shared between runs (default: "
        f"${cache_mod.CACHE_ENV} or the per-user cache directory, see docs/security.md)",
    )
    p.add_argument(
        "--trust-run-plugins",
        action="store_true",
        help="with --resume: load the case files and plugins run.json names "
        "(they run as code; default: only those given again)",
    )
    p.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="BACKEND.KEY=VALUE",
        help="an option for one backend, e.g. onnxruntime.opset=18 (repeatable)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any cell fails, errors, crashes or times out, or differs "
        "from the suite's expectations (an unexpected pass, a changed status)",
    )
    p.add_argument(
        "--update-expectations",
        action="store_true",
        help="rewrite the suite's expectations file from this run (for review)",
    )
    p.add_argument(
        "--localize",
        action="store_true",
        help="localize every model cell (default: failing model cells only)",
    )
    p.add_argument(
        "--no-localize", action="store_true", help="never localize (faster failing runs)"
    )
    _add_train_options(p)
    _add_plugin_options(p)


def _add_explain_command(sub: Any) -> None:
    p = sub.add_parser(
        "explain", help="localize a model cell of a run: per-layer error and culprit"
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--case", required=True)
    p.add_argument("--backend", required=True)
    p.add_argument("--precision", required=True)
    p.add_argument("--device", default="cpu", help="default cpu")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="time for isolating layers one by one (default 60)",
    )
    _add_plugin_options(p)


def _add_fuzz_command(sub: Any) -> None:
    p = sub.add_parser(
        "fuzz", help="search for inputs on which backends disagree on ops (hypothesis)"
    )
    p.add_argument(
        "--op",
        action="append",
        default=[],
        metavar="GLOB",
        help="only ops matching GLOB (repeatable; default: every op)",
    )
    p.add_argument(
        "--backend", type=_csv_list, default=["eager"], help="comma list (default: eager)"
    )
    p.add_argument("--device", type=_csv_list, default=["cpu"], help="comma list (default: cpu)")
    p.add_argument(
        "--precision", type=_csv_list, default=["fp32"], help="comma list (default: fp32)"
    )
    p.add_argument(
        "--examples",
        type=_positive_int,
        default=None,
        help="examples per property (default: the profile's)",
    )
    p.add_argument(
        "--profile", default="ci", help="ci (bounded, derandomized), dev or deep (default ci)"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="run directory (default: reports/<run-id>)"
    )
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="backend artifacts kept between fuzz runs (default: none; within a run "
        "each input signature is prepared once)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table")
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on any new divergence or error (known ones, marked, are xfail)",
    )
    _add_plugin_options(p)


def _add_data_command(sub: Any) -> None:
    p = sub.add_parser(
        "data", help="DataLoader throughput on a synthetic CIFAR-10 (see docs/training.md)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="run directory (default: reports/<run-id>); an existing run gets the rows added",
    )
    p.add_argument(
        "--workers",
        type=_csv_list,
        default=["0", "1", "2"],
        help="num_workers values (default 0,1,2)",
    )
    p.add_argument(
        "--start-method",
        type=_csv_list,
        default=None,
        help="multiprocessing start methods, or all (default: the OS's default one)",
    )
    p.add_argument("--samples", type=int, default=512, help="dataset size (default 512)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--epochs", type=int, default=2, help="epochs per configuration (default 2)")
    p.add_argument("--quiet", action="store_true", help="no table")


def _add_report_command(sub: Any) -> None:
    p = sub.add_parser("report", help="render the reports of a run directory")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write (default: the run directory; reports/merged-<id> for several)",
    )


def _add_export_command(sub: Any) -> None:
    p = sub.add_parser("export", help="write a run directory in another tool's format")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--format", required=True, choices=export_mod.FORMATS)
    p.add_argument(
        "--out", type=Path, default=None, help="file to write (default: standard output)"
    )


def _add_compare_command(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare a run with a baseline run; optionally gate on regressions"
    )
    p.add_argument("baseline", type=Path, metavar="BASELINE_DIR")
    p.add_argument("current", type=Path, metavar="CURRENT_DIR")
    p.add_argument(
        "--fail-on",
        default=None,
        metavar="throughput=N%,instructions=N%,drift,status,noisy",
        help="exit 1 when a cell regresses in any of these (the CI gate); exit 3 when none "
        "did but some cells' throughput could not be judged at N%% (too noisy)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for compare.md and compare.html (default: CURRENT_DIR)",
    )
    p.add_argument(
        "--noise-floor",
        type=float,
        default=None,
        metavar="PERCENT",
        help=f"the least noise floor: changes below it are always noise (default "
        f"{compare_mod.NOISE_FLOOR:.0%}%; the floor in use is derived from the runs' rounds)",
    )
    p.add_argument(
        "--normalize",
        action="store_true",
        help="divide each round median by the calibration workload timed in the same window",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="torchparity", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_list_command(sub)
    _add_run_command(sub)
    _add_explain_command(sub)
    _add_fuzz_command(sub)
    _add_data_command(sub)
    _add_report_command(sub)
    _add_export_command(sub)
    _add_compare_command(sub)
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
        width = max((len(name) for name in SUITES), default=0)
        for name, members in sorted(SUITES.items()):
            # A suite that cannot load here holds only placeholder cases saying why.
            unavailable = [CASES[m].extra.get("unavailable") for m in members if m in CASES]
            why = unavailable[0] if unavailable and all(unavailable) else None
            print(
                f"{name:<{width}} unavailable: {why}"
                if why
                else f"{name:<{width}} {len(members)} cases"
            )
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
        check_stored_selection(stored, RunDir(out).run_json)
    elif out is not None and RunDir(out).has_results():
        raise UsageError(f"{out} already holds results; use --resume or another --out")

    def pick(name: str, default):
        value = getattr(args, name)
        given = (
            value is not None and value is not False and value != []
        )  # 0 is a value (--rounds 0)
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
        "isolate": not args.no_isolate
        if not args.resume
        else stored.get("isolate", not args.no_isolate),
        "no_cache": bool(args.no_cache or stored.get("no_cache", False)),
        "cache_dir": str(args.cache_dir) if args.cache_dir else stored.get("cache_dir"),
        "backend_option": pick("backend_option", []),
        "plugins": [list(p) for p in _resume_plugins(args, stored)],
        "localize": (
            "off"
            if args.no_localize
            else "all"
            if args.localize
            else stored.get("localize")
            if stored.get("localize") in ("auto", "all", "off")
            else "auto"
        ),
        "mode": pick("mode", ["infer"]),
        "train_steps": args.train_steps
        if args.train_steps is not None
        else stored.get("train_steps", 3),
        "optimizer": pick("optimizer", "sgd"),
    }


def present_devices(devices: list[str]) -> tuple[list[str], dict[str, str]]:
    """``["present"]`` -> the available device kinds and {absent kind: why}; other lists unchanged."""
    if devices != ["present"]:
        return devices, {}
    reasons = {name: dev.unavailable() for name, dev in DEVICES.items()}
    return [n for n, r in reasons.items() if r is None], {n: r for n, r in reasons.items() if r}


# What run.json may hold, per key: the types its value may have (JSON read back is data).
_STORED_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,),
    "case": (list,),
    "backend": (list,),
    "device": (list,),
    "precision": (list,),
    "shard": (str, type(None)),
    "min_time": (int, float),
    "timeout": (int, float),
    "seed": (int,),
    "threads": (int, type(None)),
    "tf32": (bool,),
    "cudnn_benchmark": (bool,),
    "mps_fallback": (bool,),
    "isolate": (bool,),
    "no_cache": (bool,),
    "cache_dir": (str, type(None)),
    "backend_option": (list,),
    "plugins": (list,),
    "rounds": (int,),
    "time_budget": (int, float, type(None)),
    "count_instructions": (bool,),
    "localize": (str,),
    "mode": (list,),
    "train_steps": (int,),
    "optimizer": (str,),
}


def check_stored_selection(stored: dict, path: Path) -> None:
    """run.json read back for --resume: every known key of the right type."""
    for key, types in _STORED_TYPES.items():
        if key not in stored:
            continue
        value = stored[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if ok and isinstance(value, list):
            items_ok = (
                (
                    lambda v: (
                        isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
                    )
                )
                if key == "plugins"
                else (lambda v: isinstance(v, str))
            )
            ok = all(items_ok(v) for v in value)
        if ok and key in ("min_time", "timeout"):
            ok = math.isfinite(value) and value > 0
        if not ok:
            raise UsageError(
                f"{path}: {key!r} has the wrong shape ({json.dumps(value)[:60]}); "
                "not a run.json this program wrote"
            )


def _resume_plugins(args: argparse.Namespace, stored: dict) -> list[PluginSpec]:
    """The plugins a run loads: those on the command line. On --resume the ones
    run.json names must be given again (a run directory is data: what it names
    is not executed) unless --trust-run-plugins says to load them."""
    given = _plugins(args)
    named = [(str(k), str(t)) for k, t in stored.get("plugins", [])]
    missing = [p for p in named if p not in given]
    if missing and not getattr(args, "trust_run_plugins", False):
        flags = " ".join(f"--{'case-file' if k == 'file' else 'plugin'} {t}" for k, t in missing)
        raise UsageError(
            f"the run resumed used {flags}; pass them again (they run as code), "
            "or --trust-run-plugins to load what run.json names"
        )
    return given + missing


def device_options_for(sel: dict, devices: list[str]) -> DeviceOptions:
    """Device flags, refused when the device they apply to is not selected."""
    for flag, device in (("tf32", "cuda"), ("cudnn_benchmark", "cuda"), ("mps_fallback", "mps")):
        if sel[flag] and device not in devices:
            option = "--" + flag.replace("_", "-")
            raise UsageError(f"{option} applies to the {device} device; add --device {device}")
    return DeviceOptions(sel["tf32"], sel["cudnn_benchmark"], sel["mps_fallback"])


def resolve_shard(sel: dict) -> tuple[int, int]:
    """``--shard i/n``, or ``auto``/``auto:N`` from the scheduler's variables; an
    auto shard is stored resolved in ``sel`` so --resume on another node keeps it."""
    text = sel["shard"]
    try:
        if text.startswith("auto"):
            index, count, where = shard_from_env(text, os.environ)
            print(f"torchparity: --shard {text}: {index}/{count} ({where})", file=sys.stderr)
            sel["shard"] = f"{index}/{count}"
            return index, count
        return parse_shard(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run_cache_dir(given: str | None, no_cache: bool, run_dir: Path) -> Path:
    """The cache directory of a run: --cache-dir, else the per-user one
    (``$TORCHPARITY_CACHE_DIR`` overrides); with --no-cache only the run's own
    references, in the run directory. Refused (one line) when unwritable."""
    if given:
        path, what = Path(given), "--cache-dir"
    elif no_cache:
        return RunDir(run_dir).default_cache.resolve()
    else:
        path, what = (
            cache_mod.default_cache_dir(),
            f"the cache directory (set ${cache_mod.CACHE_ENV} or --cache-dir)",
        )
    why = cache_mod.check_writable(path, private=not given)
    if why:
        raise UsageError(f"{what}: {why}")
    return path.resolve()


def check_out_dir(path: Path) -> None:
    """--out must be a directory this process can write (created if missing)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {path} is not a directory")
    why = cache_mod.check_writable(path)
    if why:
        raise UsageError(f"--out: {why}")


@contextlib.contextmanager
def locked(run_dir: Path):
    """The run directory's lock for the duration of a run (a second run: exit 2)."""
    check_out_dir(run_dir)
    try:
        with RunDir(run_dir).lock():
            yield
    except RunDirLocked as exc:
        raise UsageError(str(exc)) from None


def train_settings(sel: dict) -> TrainSettings:
    """``--train-steps`` and ``--optimizer``, checked."""
    if sel["train_steps"] < 1:
        raise UsageError("--train-steps must be at least 1")
    _choose([sel["optimizer"]], list(OPTIMIZERS), "optimizer")
    return TrainSettings(steps=sel["train_steps"], optimizer=sel["optimizer"])


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
    if args.localize and args.no_localize:
        raise UsageError("--localize and --no-localize contradict each other")
    if sel["min_time"] <= 0 or sel["timeout"] <= 0:
        raise UsageError("--min-time and --timeout must be positive")
    if sel["rounds"] < 1 or sel["time_budget"] < 0:
        raise UsageError("--rounds must be at least 1 and --time-budget not negative")
    if sel["threads"] is not None and sel["threads"] < 1:
        raise UsageError("--threads must be at least 1")
    device_options = device_options_for(sel, devices)
    prepare_environment(device_options)  # before any worker starts torch
    modes = _choose(sel["mode"], ["infer", "train"], "mode")
    train = train_settings(sel)
    cells: list[Cell] = expand(
        cases, devices, precisions, backends, suite=sel["suite"], modes=modes
    )
    if sel["shard"]:
        index, count = resolve_shard(sel)
        cells = shard(cells, index, count)
    backend_options = parse_backend_options(sel["backend_option"])
    run_dir = args.out or Path("reports") / new_run_id()
    settings = RunSettings(
        seed=sel["seed"],
        timing=TimingConfig(min_time=sel["min_time"]),
        cache_dir=run_cache_dir(sel["cache_dir"], sel["no_cache"], run_dir),
        use_artifact_cache=not sel["no_cache"],
        threads=sel["threads"],
        device_options=device_options,
        backend_options=backend_options,
        output_dir=run_dir,
        localize=sel["localize"],
        train=train,
    )
    rounds = RoundsConfig(sel["rounds"], sel["time_budget"] or None)
    return RunPlan(
        run_dir,
        cells,
        settings,
        plugins,
        sel["isolate"],
        sel["timeout"],
        sel,
        rounds,
        sel["count_instructions"],
    )


def _expectations_file(args: argparse.Namespace, plan: RunPlan) -> Path | None:
    """The suite's expectations file when --update-expectations asks for it."""
    if not args.update_expectations:
        return None
    suite = plan.selection.get("suite")
    path = expectations.FILES.get(suite)
    if path is None:
        with_files = ", ".join(sorted(expectations.FILES)) or "none"
        raise UsageError(f"suite {suite!r} has no expectations file; suites with one: {with_files}")
    return path


def update_expectations(path: Path, rows: list[dict]) -> str:
    """Rewrite ``path`` from ``rows``; return a one-line account."""
    try:
        before = expectations.load(path)
    except expectations.ExpectationsError as exc:
        raise UsageError(str(exc)) from None
    after = expectations.updated(before, rows)
    torch_version = next((r.get("torch") for r in rows if r.get("torch")), "")
    expectations.save(path, after, str(torch_version))
    old, new = set(before), set(after)
    return (
        f"expectations: {len(after)} entries ({len(new - old)} new or changed, "
        f"{len(old - new)} removed) -> {path}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    plan = plan_run(args)
    with locked(plan.run_dir):
        if args.resume:
            try:  # what resume reads back, checked before any cell runs
                RunDir(plan.run_dir).read_env()
                RunDir(plan.run_dir).rows()
            except RunDirError as exc:
                raise UsageError(f"{exc}; cannot resume") from None
            _warn_damage([plan.run_dir])
        elif RunDir(plan.run_dir).has_results():  # a run that finished while we planned
            raise UsageError(f"{plan.run_dir} already holds results; use --resume or another --out")
        return _execute(args, plan)


def _execute(args: argparse.Namespace, plan: RunPlan) -> int:
    expectations_path = _expectations_file(args, plan)
    show = not args.quiet
    progress = terminal_progress() if show and sys.stderr.isatty() else None
    if show:
        print(f"torchparity: {len(plan.cells)} cells -> {plan.run_dir}", file=sys.stderr)
        absent = plan.selection.get("absent_devices") or {}
        if absent:
            print(
                "torchparity: absent devices (not run): "
                + "; ".join(f"{d}: {why}" for d, why in absent.items()),
                file=sys.stderr,
            )
    try:
        rows = execute_plan(plan, progress)
    except KeyboardInterrupt as exc:  # RunInterrupted: SIGINT or SIGTERM, rows kept
        where = f": {exc.where}" if isinstance(exc, RunInterrupted) and exc.where else ""
        print(
            f"\ninterrupted{where}; rows so far are in {RunDir(plan.run_dir).results_jsonl}; "
            f"finish with: torchparity run --resume --out {plan.run_dir}",
            file=sys.stderr,
        )
        return exc.exit_code if isinstance(exc, RunInterrupted) else EXIT_INTERRUPTED
    paths = report_mod.render(rows, plan.run_dir, RunDir(plan.run_dir).read_env())
    if show:
        print(report_mod.console_table(rows))
        print(f"results: {paths['csv']}\nreport:  {paths['html']}")
    if expectations_path is not None:
        print(update_expectations(expectations_path, rows), file=sys.stderr)
    findings = expectations.strict_findings(rows)
    if args.strict and findings and not args.quiet:
        kinds = sorted({str(r.get("expectation") or r.get("status")) for r in findings})
        print(
            f"strict: {len(findings)} cells differ from expectations ({', '.join(kinds)})",
            file=sys.stderr,
        )
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK


def plan_fuzz(args: argparse.Namespace) -> tuple[list, object, Path, list[PluginSpec]]:
    """Check the fuzz options; return (targets, profile, run dir, plugins)."""
    from torchparity.fuzz import properties as fuzz

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
    targets = [
        fuzz.Target(c, b, d, p) for c in ops for d in devices for b in backends for p in precisions
    ]
    run_dir = args.out or Path("reports") / new_run_id()
    return targets, fuzz.PROFILES[args.profile], run_dir, plugins


def cmd_fuzz(args: argparse.Namespace) -> int:
    targets, profile, run_dir, plugins = plan_fuzz(args)
    if args.cache_dir is not None and (why := cache_mod.check_writable(args.cache_dir)):
        raise UsageError(f"--cache-dir: {why}")
    with locked(run_dir):
        if RunDir(run_dir).has_results():
            raise UsageError(f"{run_dir} already holds results; choose another --out")
        return _fuzz(args, targets, profile, run_dir, plugins)


def _fuzz(
    args: argparse.Namespace, targets: list, profile: Any, run_dir: Path, plugins: list[PluginSpec]
) -> int:
    from torchparity.fuzz import properties as fuzz

    show = not args.quiet
    progress = terminal_progress() if show and sys.stderr.isatty() else None
    if show:
        print(
            f"torchparity fuzz: {len(targets)} properties, profile {profile.name} -> {run_dir}",
            file=sys.stderr,
        )
    try:
        rows, found = fuzz.fuzz_run(
            targets,
            profile,
            run_dir,
            args.examples,
            plugins,
            progress,
            args.cache_dir.resolve() if args.cache_dir else None,
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; properties so far are in {RunDir(run_dir).results_jsonl}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    paths = report_mod.render(rows, run_dir, RunDir(run_dir).read_env())
    if show:
        print(report_mod.frame_counts_line(rows))
        if found:
            table = fuzz.divergences_frame(found)[
                ["op", "backend", "precision", "status", "reason"]
            ]
            print(report_mod.markdown_table(table))
        print(
            f"divergences: {RunDir(run_dir).divergences_csv} ({len(found)})\nreport:      {paths['html']}"
        )
    findings = any(r.get("status") in ("fail", "error") for r in rows)
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK


def _warn_damage(run_dirs: Sequence[Path]) -> None:
    """One warning line per run whose results.jsonl has lines no reader could use,
    and one note per run whose timing is partial (an interrupted run)."""
    for path in run_dirs:
        note = RunDir(path).damage_note()
        if note:
            print(f"torchparity: warning: {note}", file=sys.stderr)
        partial = row_mod.partial_timing_note(RunDir(path).rows())
        if partial:
            print(f"torchparity: note: {path}: {partial}", file=sys.stderr)


def cmd_data(args: argparse.Namespace) -> int:
    import multiprocessing as mp

    from torchparity._core import environment
    from torchparity.run import data_throughput as data

    try:
        workers = [int(w) for w in args.workers]
    except ValueError:
        raise UsageError(f"--workers takes whole numbers, not {','.join(args.workers)!r}") from None
    if any(w < 0 for w in workers) or min(args.samples, args.batch, args.epochs) < 1:
        raise UsageError("--workers must be >= 0; --samples, --batch and --epochs at least 1")
    if args.start_method == ["all"]:
        args.start_method = mp.get_all_start_methods()
    methods = (
        _choose(args.start_method, mp.get_all_start_methods(), "start method")
        if args.start_method
        else None
    )
    run_dir = RunDir(args.out or Path("reports") / new_run_id()).create()
    env = run_dir.read_env() if run_dir.env_json.is_file() else environment.collect()
    env.setdefault("run_id", run_dir.path.name)
    run_dir.write_env(env)
    done = run_dir.done_cell_ids() if run_dir.has_results() else set()
    with run_dir.results_writer() as writer:
        for config in data.default_grid(workers, methods):
            if data.cell_id(config, args.samples, args.batch, args.epochs) in done:
                continue  # measured already: a resumed directory keeps its rows
            row = data.data_row(config, args.samples, args.batch, args.epochs)
            writer.append({**row, **environment.row_fields(env), "run_id": env.get("run_id")})
    rows = run_dir.rows()
    paths = report_mod.render(rows, run_dir.path, env)
    if not args.quiet:
        print(report_mod.markdown_table(report_mod.dataloader_table(rows)))
        print(f"results: {paths['csv']}\nreport:  {paths['html']}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    try:
        runs = merge.load_runs(args.run_dirs)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    _warn_damage(args.run_dirs)
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
    _warn_damage([args.baseline, args.current])
    comparison = compare_mod.compare_runs(
        base.rows, cur.rows, base.env, cur.env, noise_floor=noise, normalize=args.normalize
    )
    title = f"torchparity compare: {args.baseline.name} -> {args.current.name}"
    out = RunDir(args.out or args.current).create()
    out.write_text(out.compare_md.name, compare_mod.markdown(comparison, title, gate))
    out.write_text(out.compare_html.name, compare_mod.html_page(comparison, title, gate))
    for warning in comparison.warnings:
        print(f"torchparity: warning: {warning}", file=sys.stderr)
    print(compare_mod.markdown(comparison, title, gate))
    print(f"compare: {out.compare_md}, {out.compare_html}", file=sys.stderr)
    if gate is None:
        return EXIT_OK
    outcome = comparison.outcome(gate)
    return {"failed": EXIT_FINDINGS, "not judged": EXIT_NOT_JUDGED}.get(outcome, EXIT_OK)


def cmd_export(args: argparse.Namespace) -> int:
    try:
        run = merge.load_run(args.run_dir)
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    data = export_mod.pytest_benchmark_json(run.rows, run.env)
    text = json.dumps(data, indent=4, ensure_ascii=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(args.out, text)
        print(f"export: {len(data['benchmarks'])} benchmarks -> {args.out}", file=sys.stderr)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    """Localize one model cell of a run directory (docs/localization.md). The
    run's selection gives the seed and backend options; its plugins and case
    files are never loaded from run.json: they must be given again."""
    from torchparity.diagnose import localize as loc_mod

    rd = RunDir(args.run_dir)
    try:
        sel = rd.read_selection()
    except RunDirError as exc:
        raise UsageError(str(exc)) from None
    _load(_plugins(args))
    case = CASES.get(args.case)
    if case is None:
        stored = ", ".join(
            str(p[1]) for p in sel.get("plugins", []) if isinstance(p, list) and len(p) == 2
        )
        hint = (
            f"; the run loaded {stored}: pass them again with --case-file/--plugin"
            if stored
            else ""
        )
        raise UsageError(f"unknown case {args.case!r}{hint}")
    if case.kind != "model":
        raise UsageError(f"{args.case} is an op; explain localizes model cells")
    _choose([args.backend], backend_names(), "backend")
    _choose([args.precision], list(PRECISIONS), "precision")
    _choose([args.device], list(DEVICES), "device")
    if args.budget is not None and args.budget <= 0:
        raise UsageError("--budget must be positive")
    seed = sel.get("seed", 0)
    if not isinstance(seed, int):
        raise UsageError(f"{rd.run_json} holds a seed that is not an integer")
    threads = sel.get("threads")
    settings = RunSettings(
        seed=seed,
        backend_options=parse_backend_options(sel.get("backend_option", [])),
        output_dir=rd.path,
        localize="off",
        threads=threads if isinstance(threads, int) and threads > 0 else None,
    )
    apply_thread_settings(settings)
    cell = Cell(
        case.name, case.kind, str(sel.get("suite") or ""), args.device, args.precision, args.backend
    )
    try:
        loc, setup, layers = loc_mod.localize(
            cell, settings, args.budget or loc_mod.DEFAULT_BUDGET_S
        )
    except loc_mod.LocalizeError as exc:
        raise UsageError(str(exc)) from None
    saved = loc_mod.save(rd.path, loc, setup, layers)
    if rd.has_results():
        try:
            report_mod.render(rd.rows(), rd.path, rd.read_env())
        except RunDirError as exc:
            raise UsageError(f"{exc}; the table is in {saved['csv']}") from None
    print(report_mod.markdown_table(loc.table()))
    print(report_mod.localization_summary(saved["record"]))
    print(f"table: {saved['csv']}")
    return EXIT_OK


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "explain": cmd_explain,
    "fuzz": cmd_fuzz,
    "data": cmd_data,
    "report": cmd_report,
    "compare": cmd_compare,
    "export": cmd_export,
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
    except BrokenPipeError:
        # The reader stopped reading (`torchparity list | head`): not an error.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
