"""``torchparity run``: plan the matrix from the selection, execute it into
the run directory, render the reports, and gate on ``--strict``."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from torchparity._core import cache as cache_mod
from torchparity._core.console import plural
from torchparity._core.errors import MachineFault, machine_fault
from torchparity._core.row import timing_partial
from torchparity._core.rundir import RunDir
from torchparity._core.status import Status
from torchparity.axes.devices import DEVICES, DeviceOptions, prepare_environment
from torchparity.axes.matrix import Cell, expand, parse_shard, shard
from torchparity.axes.precision import PRECISIONS
from torchparity.axes.scheduler_env import shard_from_env
from torchparity.backends import backend_names
from torchparity.cases.case import CASES, SUITES, Case, PluginSpec, RegistryError, suite_cases
from torchparity.cases.reference import behaviour_now
from torchparity.cell.context import RunSettings
from torchparity.cli.backend_options import parse_backend_options, warn_unselected
from torchparity.cli.common import (
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    choose,
    load,
    locked,
    run_dir_errors,
    valid_names,
    warn_damage,
)
from torchparity.cli.options import add_options, add_plugin_options
from torchparity.cli.selection import selection
from torchparity.report import report as report_mod
from torchparity.run.library_log import LibraryLog
from torchparity.run.progress import LogProgress
from torchparity.run.runner import (
    Phases,
    RunInterrupted,
    RunPlan,
    execute_plan,
    new_run_id,
    terminal_progress,
)
from torchparity.timing.rounds import RoundsConfig
from torchparity.timing.timer import TimingConfig
from torchparity.train_loop import OPTIMIZERS, TrainSettings
from torchparity.verdicts import expectations


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="run a benchmark and conformance matrix")
    add_options(p)
    add_plugin_options(p)


def present_devices(devices: list[str]) -> tuple[list[str], dict[str, str]]:
    """``present`` (alone or among others) -> the available device kinds in its place,
    and {absent kind: why}; a list without it is unchanged."""
    if "present" not in devices:
        return devices, {}
    reasons = {name: dev.unavailable() for name, dev in DEVICES.items()}
    here = [n for n, r in reasons.items() if r is None]
    chosen = [n for d in devices for n in (here if d == "present" else [d])]
    absent = {n: r for n, r in reasons.items() if r and n not in chosen}
    return list(dict.fromkeys(chosen)), absent


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


def train_settings(sel: dict) -> TrainSettings:
    """``--train-steps`` and ``--optimizer``, checked."""
    if sel["train_steps"] < 1:
        raise UsageError("--train-steps must be at least 1")
    choose([sel["optimizer"]], list(OPTIMIZERS), "optimizer")
    return TrainSettings(steps=sel["train_steps"], optimizer=sel["optimizer"])


def check_numbers(sel: dict, timeout_given: bool) -> None:
    """Numbers read back from run.json bypass the parser's types: checked here."""
    if timeout_given and not sel["isolate"]:
        raise UsageError(
            "--timeout needs crash isolation: --no-isolate runs cells in this process, "
            "where nothing can stop a hung cell; drop one of the two"
        )
    if sel["min_time"] <= 0 or sel["timeout"] <= 0:
        raise UsageError("--min-time and --timeout must be positive")
    if sel["rounds"] < 1 or (sel["time_budget"] or 0) < 0:
        raise UsageError("--rounds must be at least 1 and --time-budget not negative")
    if sel["max_new_tokens"] is not None and sel["max_new_tokens"] < 1:
        raise UsageError("--max-new-tokens must be at least 1")
    if sel["threads"] is not None and sel["threads"] < 1:
        raise UsageError("--threads must be at least 1")
    if not all(isinstance(b, int) and b >= 1 for b in sel["batch"]):
        raise UsageError("--batch takes whole numbers of at least 1, e.g. 1,8,32")


def _suite_pool(suites: list[str], file_cases: list[str]) -> tuple[list[tuple[str, Case]], str]:
    """(suite, case) for every case of ``suites``; with none named, the cases the
    case files register (with a line saying so), else the models suite."""
    if not suites and file_cases:
        pool = [(_first_suite(name), CASES[name]) for name in file_cases]
        names = ", ".join(file_cases[:5]) + (", ..." if len(file_cases) > 5 else "")
        return (
            pool,
            f"no --suite given: the {plural(len(pool), 'case')} the case files register ({names})",
        )
    try:
        return [(s, c) for s in suites or ["models"] for c in suite_cases(s)], ""
    except RegistryError as exc:
        raise UsageError(str(exc)) from None


def _first_suite(case: str) -> str:
    return next((s for s, members in SUITES.items() if case in members), "")


def select(sel: dict, file_cases: list[str]) -> tuple[list[tuple[str, Case]], str]:
    """The selection's (suite, case) pairs, each case once (in its first suite),
    filtered by ``--case``; and the line that says what no --suite selected."""
    pool, note = _suite_pool(sel["suite"], file_cases)
    unique = list({c.name: (s, c) for s, c in reversed(pool)}.items())[::-1]
    pairs = [pair for _, pair in unique]
    patterns = sel["case"]
    names = [c.name for _, c in pairs]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(n, p) for n in names):
            where = f"suite {', '.join(sel['suite'])}" if sel["suite"] else "the selection"
            raise UsageError(f"no case matches {p!r} in {where}; {valid_names(p, names)}")
    if patterns:
        pairs = [(s, c) for s, c in pairs if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
    return pairs, note


def plan_cells(sel: dict, file_cases: Sequence[str] = ()) -> tuple[list[Cell], DeviceOptions, str]:
    """The selection's cells (this shard's), every axis value checked; and the
    line saying what was selected when no --suite was."""
    pairs, note = select(sel, list(file_cases))
    backends = choose(sel["backend"], backend_names(), "backend")
    devices, sel["absent_devices"] = present_devices(sel["device"])
    devices = choose(devices, list(DEVICES), "device")
    precisions = choose(sel["precision"], list(PRECISIONS), "precision")
    device_options = device_options_for(sel, devices)
    modes = choose(sel["mode"], ["infer", "train", "shape", "generate"], "mode")
    cells = [
        cell
        for suite, case in pairs
        for cell in expand(
            [case], devices, precisions, backends, suite=suite, modes=modes, batches=sel["batch"]
        )
    ]
    if sel["shard"]:
        index, count = resolve_shard(sel)
        cells = shard(cells, index, count)
    return cells, device_options, note


def plan_run(args: argparse.Namespace) -> RunPlan:
    sel = selection(args)
    plugins: list[PluginSpec] = [(str(k), str(t)) for k, t in sel["plugins"]]
    file_cases = load(plugins)
    check_numbers(sel, args.timeout is not None)
    cells, device_options, note = plan_cells(sel, file_cases)
    if note and not args.quiet:
        print(f"torchparity: {note}", file=sys.stderr)
    prepare_environment(device_options)  # before any worker starts torch
    train = train_settings(sel)
    backend_options = parse_backend_options(sel["backend_option"])
    warn_unselected(backend_options, sel["backend"])
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
        max_new_tokens=sel["max_new_tokens"],
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


def expectations_file(args: argparse.Namespace, plan: RunPlan) -> Path | None:
    """The suite's expectations file when --update-expectations asks for it."""
    if not args.update_expectations:
        return None
    suites = plan.selection.get("suite") or ["models"]
    if len(suites) != 1:
        raise UsageError(
            f"--update-expectations rewrites one suite's file; --suite names {len(suites)}"
        )
    suite = suites[0]
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
        f"expectations: {plural(len(after), 'entry')} ({len(new - old)} new or changed, "
        f"{len(old - new)} removed) -> {path}"
    )


def models_changed(plan: RunPlan, rows: list[dict[str, Any]]) -> list[str]:
    """Cases with cells still to run whose rows in the run directory record
    another behavioural fingerprint than the case's module has now."""
    done = {str(r.get("cell_id")) for r in rows if not timing_partial(r)}
    todo = {c.case for c in plan.cells if c.id not in done}
    recorded: dict[str, set[str]] = {}
    for r in rows:
        name, fingerprint = r.get("case"), r.get("behaviour_fingerprint")
        if name in todo and isinstance(fingerprint, str) and fingerprint:
            recorded.setdefault(str(name), set()).add(fingerprint)
    changed = []
    for name, prints in sorted(recorded.items()):
        now = behaviour_now(CASES[name], plan.settings.seed) if name in CASES else None
        if now is not None and prints != {now}:
            changed.append(name)
    return changed


def check_resumable(plan: RunPlan) -> None:
    """--resume reads the run back before any cell, and refuses to add rows of
    a model that computes something else now to the rows of the one before."""
    run_dir = RunDir(plan.run_dir)
    with run_dir_errors("; cannot resume"):
        run_dir.read_env()
        rows = [dict(r) for r in run_dir.rows()]
    warn_damage([plan.run_dir])
    changed = models_changed(plan, rows)
    if changed:
        raise UsageError(
            f"--resume: the model of {', '.join(changed)} computes something else than when "
            f"the run in {plan.run_dir} began (its behaviour fingerprint changed: the case "
            "file or what it builds was edited); its rows would mix two model versions. "
            "Restore it, or start another run with another --out"
        )


def main(args: argparse.Namespace) -> int:
    phases = Phases()  # the wall time counts from here: planning is "other"
    with LibraryLog() as library_log:  # libraries' warnings and logs: worker.log
        plan = plan_run(args)
        with locked(plan.run_dir):
            library_log.attach(RunDir(plan.run_dir).open_worker_log())
            return _locked_main(args, plan, phases)


def _locked_main(args: argparse.Namespace, plan: RunPlan, phases: Phases) -> int:
    if args.resume:
        check_resumable(plan)
    elif RunDir(plan.run_dir).has_results():  # a run that finished while we planned
        raise UsageError(f"{plan.run_dir} already holds results; use --resume or another --out")
    return execute(args, plan, phases)


def _announce(plan: RunPlan) -> None:
    print(f"torchparity: {plural(len(plan.cells), 'cell')} -> {plan.run_dir}", file=sys.stderr)
    absent = plan.selection.get("absent_devices") or {}
    if absent:
        print(
            "torchparity: absent devices (not run): "
            + "; ".join(f"{d}: {why}" for d, why in absent.items()),
            file=sys.stderr,
        )


@contextlib.contextmanager
def exits_raise(isolate: bool) -> Iterator[None]:
    """--no-isolate runs the cases' code in this process: ``os._exit`` there
    would end the run silently with the model's exit code. While cells run,
    it raises ``SystemExit`` instead (which ``execute`` reports); a forked
    child (a DataLoader worker) still exits as usual."""
    if isolate:
        yield
        return
    real_exit, pid = os._exit, os.getpid()

    def guarded(code: int) -> NoReturn:
        if os.getpid() != pid:
            real_exit(code)
        raise SystemExit(code)

    os._exit = guarded
    try:
        yield
    finally:
        os._exit = real_exit


def _stopped(plan: RunPlan, why: str) -> str:
    results = RunDir(plan.run_dir).results_jsonl
    return (
        f"{why}; rows so far are in {results}; "
        f"finish with: torchparity run --resume --out {plan.run_dir}"
    )


def _progress(show: bool, cells: int) -> tuple[Any, Any]:
    """(progress function, what counts finished rows): a bar on a terminal; on
    anything else (a CI log, a pipe) a line at a steady interval."""
    if not show:
        return None, contextlib.nullcontext()
    if sys.stderr.isatty():
        return terminal_progress(), contextlib.nullcontext()
    log = LogProgress("run", cells)
    return log, log


def _run_cells(plan: RunPlan, show: bool, phases: Phases) -> list[dict[str, Any]] | int:
    """The run's rows, or the exit code of a run that stopped early."""
    progress, ticking = _progress(show, len(plan.cells))
    on_row = progress.row if isinstance(progress, LogProgress) else None
    try:
        with exits_raise(plan.isolate), ticking:
            return [dict(row) for row in execute_plan(plan, progress, on_row, phases)]
    except KeyboardInterrupt as exc:  # RunInterrupted: SIGINT or SIGTERM, rows kept
        where = f": {exc.where}" if isinstance(exc, RunInterrupted) and exc.where else ""
        print("\n" + _stopped(plan, f"interrupted{where}"), file=sys.stderr)
        return exc.exit_code if isinstance(exc, RunInterrupted) else EXIT_INTERRUPTED
    except (OSError, MachineFault) as exc:  # a full or read-only --out: rows kept whole
        fault = machine_fault(exc)
        if fault is None:
            raise
        print(_stopped(plan, f"torchparity: error: the run stopped: {fault}"), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:
        if plan.isolate:  # not a cell's: workers run the cells
            raise
        why = (
            f"torchparity: error: the run stopped: a cell called sys.exit({exc.code!r}) or "
            "os._exit in this process (--no-isolate); without --no-isolate that cell is a "
            "crash row"
        )
        print(_stopped(plan, why), file=sys.stderr)
        return EXIT_FINDINGS


def untested_line(rows: list[dict]) -> str | None:
    """--strict: a run that tested nothing (every cell skipped, or no cell) is no evidence."""
    if any(r.get("status") != Status.SKIP.value for r in rows):
        return None
    what = (
        f"all {plural(len(rows), 'cell')} were skipped" if rows else "the selection holds no cell"
    )
    return f"strict: no cell was tested ({what})"


def execute(args: argparse.Namespace, plan: RunPlan, phases: Phases | None = None) -> int:
    expectations_path = expectations_file(args, plan)
    show = not args.quiet
    if show:
        _announce(plan)
    phases = phases or Phases()
    rows = _run_cells(plan, show, phases)
    if isinstance(rows, int):
        return rows
    began = time.perf_counter()
    paths = report_mod.render(rows, plan.run_dir, RunDir(plan.run_dir).read_env())
    phases.rendering_s += time.perf_counter() - began
    if show:
        print(report_mod.console_table(rows))
        print(f"results: {paths['csv']}\nreport:  {paths['html']}")
        print(phases.line(), file=sys.stderr)
    if expectations_path is not None:
        print(update_expectations(expectations_path, rows), file=sys.stderr)
    if not args.strict:
        return EXIT_OK
    findings = expectations.strict_findings(rows)
    untested = untested_line(rows)
    if findings and not args.quiet:
        kinds = sorted({str(r.get("expectation") or r.get("status")) for r in findings})
        print(
            f"strict: {plural(len(findings), 'cell')} differ from expectations ({', '.join(kinds)})",
            file=sys.stderr,
        )
    if untested:  # said even with --quiet: nothing else explains the exit code
        print(untested, file=sys.stderr)
    return EXIT_FINDINGS if findings or untested else EXIT_OK
