"""What every command shares: the usage error, exit codes, value parsers, the
plugin options and loading, and reading and locking run directories."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from torchparity._core import cache as cache_mod
from torchparity._core import row as row_mod
from torchparity._core.rundir import RunDir, RunDirError, RunDirLocked, RunDirUnsafe
from torchparity.cases.case import CASES, PluginSpec, RegistryError, load_all
from torchparity.run import library_log

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# compare --fail-on: nothing failed, but some cells could not be judged (too noisy, other CPUs)
EXIT_NOT_JUDGED = 3


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, no usage dump
        raise UsageError(message)


def csv_list(text: str) -> list[str]:
    """A comma list, each value once (``eager,eager`` runs eager once)."""
    return list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


def backend_option_list(text: str) -> list[str]:
    """``a.k=1,b.k=2`` -> ``["a.k=1", "b.k=2"]``; a piece without ``=`` belongs to
    the value before it (``a.k=x,y`` is one option whose value holds a comma)."""
    out: list[str] = []
    for piece in text.split(","):
        if out and "=" not in piece:
            out[-1] += "," + piece
        elif piece.strip():
            out.append(piece.strip())
    return list(dict.fromkeys(out))


def positive_float(text: str) -> float:
    """A finite number above zero (0, nan and inf are refused, never defaulted)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above 0")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_int_list(text: str) -> list[int]:
    """A comma list of whole numbers >= 1, each once, in the order given."""
    return list(dict.fromkeys(positive_int(t) for t in csv_list(text)))


def choose(values: list[str], valid: Sequence[str], what: str) -> list[str]:
    for v in values:
        if v not in valid:
            raise UsageError(f"unknown {what} {v!r}; valid: {', '.join(valid)}")
    return values


def valid_names(wanted: str, names: Sequence[str], listed: int = 12) -> str:
    """``valid: a, b`` when ``names`` are few; else the few closest to ``wanted``
    (difflib) and how many there are, so one line stays readable."""
    if len(names) <= listed:
        return f"valid: {', '.join(names) or 'none'}"
    plain = wanted.strip("*?[]")  # a glob's letters are what a reader typed
    close = difflib.get_close_matches(plain, names, n=5, cutoff=0.4)
    close = close or [n for n in names if plain and plain.lower() in n.lower()][:5]
    shown = f"closest: {', '.join(close)}; " if close else ""
    return f"{shown}{len(names)} in all (torchparity list)"


def warn(message: str) -> None:
    print(f"torchparity: warning: {message}", file=sys.stderr)


# -- case files and plugins ----------------------------------------------------


def plugins(args: argparse.Namespace) -> list[PluginSpec]:
    """``--plugin`` and ``--case-file`` as plugin specs; a case file must be a file."""
    specs: list[PluginSpec] = [("module", m) for m in args.plugin or []]
    for path in args.case_file or []:
        if Path(path).is_dir():
            raise UsageError(f"case file {path!r} is a directory; --case-file takes a .py file")
        if not Path(path).is_file():
            raise UsageError(f"case file {path!r} does not exist")
        specs.append(("file", str(Path(path).resolve())))
    return specs


def load(specs: list[PluginSpec]) -> list[str]:
    """Load the built-in suites, then ``specs``; the names of the cases ``specs`` registered."""
    try:
        with library_log.capturing():  # what their libraries print at import: worker.log
            load_all(specs)
    except RegistryError as exc:
        raise UsageError(str(exc)) from None
    return registered_by(specs)


def registered_by(specs: list[PluginSpec]) -> list[str]:
    """The cases the case files and plugin modules of ``specs`` registered."""
    files = {str(Path(t).resolve()) for k, t in specs if k == "file"}
    modules = {t for k, t in specs if k == "module"}

    def theirs(source: str) -> bool:  # a case's source: its case file's path, or its module
        file = (
            source if source.endswith(".py") else getattr(sys.modules.get(source), "__file__", None)
        )
        return source in modules or (file is not None and str(Path(file).resolve()) in files)

    return [name for name, case in CASES.items() if theirs(case.source)]


# -- run directories -----------------------------------------------------------


def warn_damage(run_dirs: Sequence[Path]) -> None:
    """One warning line per run whose results.jsonl has lines no reader could use,
    and one note per run whose timing is partial (an interrupted run)."""
    for path in run_dirs:
        note = RunDir(path).damage_note()
        if note:
            warn(note)
        partial = row_mod.partial_timing_note(RunDir(path).rows())
        if partial:
            print(f"torchparity: note: {path}: {partial}", file=sys.stderr)


def check_out_dir(path: Path, flag: str = "--out") -> None:
    """``flag`` must name a directory this process can write (created if missing)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is not a directory")
    why = cache_mod.check_writable(path)
    if why:
        raise UsageError(f"{flag}: {why}")


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """The run directory's lock for the duration of a run (a second run, or a
    directory whose writes would leave it through a link: exit 2)."""
    check_out_dir(run_dir)
    try:
        with RunDir(run_dir).lock():
            yield
    except (RunDirLocked, RunDirUnsafe) as exc:
        raise UsageError(str(exc)) from None


@contextlib.contextmanager
def run_dir_errors(suffix: str = "") -> Iterator[None]:
    """A run directory that cannot be read (missing, damaged, a newer format) is one line."""
    try:
        yield
    except RunDirError as exc:
        raise UsageError(f"{exc}{suffix}") from None
