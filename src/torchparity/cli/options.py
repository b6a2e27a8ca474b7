"""The options of the commands that take many (``run``, ``fuzz``, ``data``),
each defined once: its flag, how its text is parsed, its default, the run.json
key it is stored under, the types run.json may hold for it, whether
``--resume`` must see the same value, and its help.

The same tables build the argument parsers and render the option tables of
docs/cli.md (``markdown_table``); ``run``'s also writes run.json
(``selection.py``), checks run.json read back and refuses a ``--resume`` that
asks for another run.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchparity._core import cache as cache_mod
from torchparity.axes.precision import DEFAULT_PRECISIONS
from torchparity.cli.common import (
    backend_option_list,
    csv_list,
    positive_float,
    positive_int,
    positive_int_list,
)
from torchparity.timing.rounds import DEFAULT_ROUNDS, DEFAULT_TIME_BUDGET

_NOT_A_FLAG = object()
LIST_PARSERS: tuple[Callable[[str], list], ...] = (
    csv_list,
    positive_int_list,
    backend_option_list,
)


@dataclass(frozen=True)
class Option:
    """One command-line option. ``key`` is its run.json key (None: not stored);
    several flags may set one key (``--localize``/``--no-localize``), each with
    its ``const``. ``identity``: part of what the run is (its cells and how they
    are measured), so ``--resume`` refuses a different value."""

    flag: str
    help: str
    key: str | None = None
    parse: Callable[[str], Any] | None = None  # None: a flag without a value
    default: Any = None  # when neither the command line nor run.json gives one
    shown_default: str | None = None  # the default in words, for help and docs
    const: Any = _NOT_A_FLAG  # a flag's value (parse is None)
    stored: tuple[type, ...] = ()  # the types run.json may hold under key
    identity: bool = False
    metavar: str | None = None
    on_resume: str | None = None  # the docs' --resume column, when not implied by key/identity

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def many(self) -> bool:
        """A list-valued option (its parser gives a list): comma lists and
        repetition, accumulated, on every command."""
        return self.parse in LIST_PARSERS

    @property
    def is_flag(self) -> bool:
        return self.parse is None

    def flag_value(self) -> Any:
        return True if self.const is _NOT_A_FLAG else self.const

    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.is_flag or self.default is None or self.default is False or self.default == []:
            return ""
        if isinstance(self.default, (list, tuple)):
            return ",".join(str(v) for v in self.default)
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)

    def add_to(self, parser: argparse.ArgumentParser, with_default: bool = False) -> None:
        """The option on ``parser``. Its argparse default is None, so "not given"
        is told apart from every value (``--rounds 0`` is a value; ``run`` then
        takes run.json's value or the table's), unless ``with_default``: then
        the table's default (a command without run.json)."""
        shown = self.default_text()
        help_text = f"{self.help} (default: {shown})" if shown else self.help
        default = copy.copy(self.default) if with_default else None
        if self.parse is None:
            parser.add_argument(
                self.flag, dest=self.dest, action="store_true", default=default, help=help_text
            )
        else:
            parser.add_argument(
                self.flag,
                dest=self.dest,
                type=self.parse,
                action=Accumulate if self.many else Once,
                default=default,
                metavar=self.metavar,
                help=help_text,
            )

    def given(self, args: argparse.Namespace) -> Any:
        """The value the command line gave for this option's key, or None."""
        value = getattr(args, self.dest, None)
        if value is None or value is False:
            return None
        if self.is_flag:
            return self.flag_value()
        return str(value) if isinstance(value, Path) else value


def _given_before(namespace: argparse.Namespace, dest: str) -> bool:
    """Whether this parse has set ``dest`` already (a default does not count)."""
    given = vars(namespace).setdefault("_given", set())
    before = dest in given
    given.add(dest)
    return before


class Accumulate(argparse.Action):
    """A list-valued option: ``--x a,b --x c`` is ``[a, b, c]`` (each once); a
    value given replaces the default rather than adding to it."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        before = (
            list(getattr(namespace, self.dest) or []) if _given_before(namespace, self.dest) else []
        )
        setattr(namespace, self.dest, list(dict.fromkeys([*before, *values])))


class Once(argparse.Action):
    """A one-value option: a second, different value would silently replace the
    first, so it is refused (one line, exit 2)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        if _given_before(namespace, self.dest) and getattr(namespace, self.dest) != values:
            parser.error(
                f"{option_string} takes one value; given {getattr(namespace, self.dest)} "
                f"and {values}"
            )
        setattr(namespace, self.dest, values)


# Options several commands share, defined once.
_BACKEND = Option(
    "--backend",
    "comma list",
    "backend",
    csv_list,
    ["eager"],
    stored=(list,),
    identity=True,
    metavar="B,...",
)
_OUT = Option(
    "--out", "run directory", parse=Path, shown_default="reports/<run-id>", metavar="RUN_DIR"
)
_QUIET = Option("--quiet", "no progress bar, no table", default=False)

RUN_OPTIONS: tuple[Option, ...] = (
    Option(
        "--suite",
        "suites to run",
        "suite",
        csv_list,
        [],
        shown_default="models; the cases of --case-file when it registers some",
        stored=(list, str),  # a str: run.json written before several suites
        identity=True,
        metavar="NAME,...",
    ),
    Option(
        "--case",
        "only cases matching these globs",
        "case",
        csv_list,
        [],
        shown_default="every case of the suites",
        stored=(list,),
        identity=True,
        metavar="GLOB,...",
    ),
    _BACKEND,
    Option(
        "--device",
        "comma list of cpu, cuda, mps; 'present': the devices this machine has, the absent "
        "ones named in one line (no rows); a device named but absent: skip rows saying why",
        "device",
        csv_list,
        ["present"],
        stored=(list,),
        identity=True,
        metavar="D,...",
    ),
    Option(
        "--precision",
        "comma list",
        "precision",
        csv_list,
        list(DEFAULT_PRECISIONS),
        stored=(list,),
        identity=True,
        metavar="P,...",
    ),
    Option(
        "--mode",
        "comma list of infer, train (docs/training.md), shape (docs/shapes.md), "
        "generate (docs/generation.md)",
        "mode",
        csv_list,
        ["infer"],
        stored=(list,),
        identity=True,
        metavar="M,...",
    ),
    Option(
        "--batch",
        "infer cells at each of these batch sizes (a batch sweep: a row per size; "
        "docs/measurement.md)",
        "batch",
        positive_int_list,
        [],
        shown_default="each case's own",
        stored=(list,),
        identity=True,
        metavar="N,...",
    ),
    Option(
        "--seed",
        "input and weight seed (rows carry it)",
        "seed",
        int,
        0,
        stored=(int,),
        identity=True,
        metavar="N",
    ),
    Option(
        "--backend-option",
        "an option for one backend, e.g. onnxruntime.opset=18 (docs/backends.md)",
        "backend_option",
        backend_option_list,
        [],
        stored=(list,),
        identity=True,
        metavar="BACKEND.KEY=VALUE,...",
    ),
    Option(
        "--shard",
        "run only shard i of n; auto: from a Slurm array or Kubernetes Indexed Job "
        "(docs/scale-out.md)",
        "shard",
        str,
        None,
        shown_default="the whole matrix",
        stored=(str, type(None)),
        identity=True,
        metavar="i/n|auto",
    ),
    Option(
        "--train-steps",
        "optimizer steps a train cell compares",
        "train_steps",
        int,
        3,
        stored=(int,),
        identity=True,
        metavar="N",
    ),
    Option(
        "--max-new-tokens",
        "tokens each prompt of a generate cell generates (docs/generation.md)",
        "max_new_tokens",
        int,
        None,
        shown_default="each case's declaration (32)",
        stored=(int, type(None)),
        identity=True,
        metavar="N",
    ),
    Option(
        "--optimizer",
        "train cells' optimizer: sgd, sgd-foreach, sgd-fused, adamw, adamw-foreach, adamw-fused",
        "optimizer",
        str,
        "sgd",
        stored=(str,),
        identity=True,
        metavar="NAME",
    ),
    Option(
        "--min-time",
        "seconds measured per cell",
        "min_time",
        positive_float,
        0.1,
        stored=(int, float),
        identity=True,
        metavar="SECONDS",
    ),
    Option(
        "--rounds",
        "timing rounds per cell, interleaved over the run (1: one window)",
        "rounds",
        int,
        DEFAULT_ROUNDS,
        stored=(int,),
        identity=True,
        metavar="N",
    ),
    Option(
        "--threads",
        "torch intra-op threads in workers",
        "threads",
        positive_int,
        None,
        shown_default="torch's default",
        stored=(int, type(None)),
        identity=True,
        metavar="N",
    ),
    Option(
        "--count-instructions",
        "cpu cells: also count user-space instructions per call under valgrind (slow)",
        "count_instructions",
        default=False,
        stored=(bool,),
        identity=True,
    ),
    Option(
        "--tf32",
        "cuda: allow TF32 matmuls/convolutions (off by default for conformance)",
        "tf32",
        default=False,
        stored=(bool,),
        identity=True,
    ),
    Option(
        "--cudnn-benchmark",
        "cuda: enable cuDNN autotuning",
        "cudnn_benchmark",
        default=False,
        stored=(bool,),
        identity=True,
    ),
    Option(
        "--mps-fallback",
        "mps: let unsupported ops fall back to the CPU (PYTORCH_ENABLE_MPS_FALLBACK=1)",
        "mps_fallback",
        default=False,
        stored=(bool,),
        identity=True,
    ),
    # How the run is carried out: --resume may change these.
    Option(
        "--timeout",
        "seconds per cell before it (and every process it started) is killed; "
        "needs crash isolation (not with --no-isolate)",
        "timeout",
        positive_float,
        300.0,
        stored=(int, float),
        metavar="SECONDS",
    ),
    Option(
        "--time-budget",
        "no further timing round starts past this run time (0: none)",
        "time_budget",
        float,
        DEFAULT_TIME_BUDGET,
        stored=(int, float, type(None)),
        metavar="SECONDS",
    ),
    Option(
        "--isolate",
        "run cells in worker processes, with crash isolation (with --resume: "
        "finish a --no-isolate run isolated)",
        "isolate",
        default=True,
        shown_default="on",
        const=True,
        stored=(bool,),
    ),
    Option(
        "--no-isolate",
        "run cells in this process (no crash isolation, no --timeout)",
        "isolate",
        default=True,
        const=False,
        stored=(bool,),
    ),
    Option(
        "--no-cache",
        "no shared cache: artifacts rebuilt, references kept in RUN_DIR/cache",
        "no_cache",
        default=False,
        stored=(bool,),
    ),
    Option(
        "--cache-dir",
        "reference and backend-artifact cache, shared between runs",
        "cache_dir",
        Path,
        None,
        shown_default=f"${cache_mod.CACHE_ENV} or the per-user cache directory, docs/security.md",
        stored=(str, type(None)),
        metavar="DIR",
    ),
    Option(
        "--localize",
        "localize every model cell",
        "localize",
        default="auto",
        shown_default="failing model cells only",
        const="all",
        stored=(str,),
    ),
    Option(
        "--no-localize",
        "never localize (faster failing runs)",
        "localize",
        default="auto",
        const="off",
        stored=(str,),
    ),
    # What this invocation does; not stored.
    _OUT,
    Option("--resume", "finish the missing cells of --out (the same run: see docs/cli.md)"),
    Option(
        "--trust-run-plugins",
        "with --resume: load the case files and plugins run.json names "
        "(they run as code; default: only those given again)",
    ),
    _QUIET,
    Option(
        "--strict",
        "exit 1 when any cell fails, errors, crashes or times out, differs from the suite's "
        "expectations (an unexpected pass, a changed status), or no cell was tested",
    ),
    Option(
        "--update-expectations",
        "rewrite the suite's expectations file from this run (for review)",
    ),
)

# The case files and plugins: on run, list, fuzz and explain. run.json stores
# them as "plugins" (``[kind, target]`` pairs); --resume loads only those given again.
PLUGIN_OPTIONS: tuple[Option, ...] = (
    Option(
        "--case-file",
        "Python files that register cases or backends",
        parse=csv_list,
        metavar="PATH,...",
        on_resume="given again",
    ),
    Option(
        "--plugin",
        "importable modules that register cases or backends",
        parse=csv_list,
        metavar="MODULE,...",
        on_resume="given again",
    ),
)

# ``torchparity fuzz`` (nothing stored: a fuzz run has no run.json).
FUZZ_OPTIONS: tuple[Option, ...] = (
    Option(
        "--op",
        "only ops matching these globs",
        parse=csv_list,
        default=[],
        shown_default="every op",
        metavar="GLOB,...",
    ),
    _BACKEND,
    Option("--device", "comma list", parse=csv_list, default=["cpu"], metavar="D,..."),
    Option("--precision", "comma list", parse=csv_list, default=["fp32"], metavar="P,..."),
    Option(
        "--examples",
        "examples per property",
        parse=positive_int,
        shown_default="the profile's",
        metavar="N",
    ),
    Option(
        "--profile",
        "ci (bounded, derandomized), dev or deep",
        parse=str,
        default="ci",
        metavar="NAME",
    ),
    _OUT,
    Option(
        "--cache-dir",
        "backend artifacts kept between fuzz runs",
        parse=Path,
        shown_default="none; within a run each input signature is prepared once",
        metavar="DIR",
    ),
    Option(
        "--mode",
        "infer: op inputs; shape: run shapes within the declared dynamic ranges of every "
        "case --op matches (docs/shapes.md)",
        parse=str,
        default="infer",
        metavar="MODE",
    ),
    _QUIET,
    Option(
        "--strict",
        "exit 1 on any new divergence or error (known ones, marked, are xfail)",
        default=False,
    ),
)

# ``torchparity list``.
LIST_OPTIONS: tuple[Option, ...] = (
    Option(
        "--suite",
        "only these suites' cases",
        parse=csv_list,
        default=[],
        shown_default="every case",
        metavar="NAME,...",
    ),
)

# ``torchparity data`` (docs/training.md).
DATA_OPTIONS: tuple[Option, ...] = (
    Option(
        "--out",
        "run directory; an existing run gets the rows added",
        parse=Path,
        shown_default="reports/<run-id>",
        metavar="RUN_DIR",
    ),
    Option(
        "--workers", "num_workers values", parse=csv_list, default=["0", "1", "2"], metavar="N,..."
    ),
    Option(
        "--start-method",
        "multiprocessing start methods, or all",
        parse=csv_list,
        shown_default="the OS's default one",
        metavar="M,...|all",
    ),
    Option("--samples", "dataset size", parse=int, default=512, metavar="N"),
    Option("--batch", "batch size", parse=int, default=64, metavar="N"),
    Option("--epochs", "epochs per configuration", parse=int, default=2, metavar="N"),
    Option("--quiet", "no table", default=False),
)

# run.json keys written beside the options: the loaded case files and plugins
# (``[kind, target]`` pairs) and the devices `--device present` found absent.
EXTRA_STORED: dict[str, tuple[type, ...]] = {"plugins": (list,), "absent_devices": (dict,)}


def stored_keys() -> list[str]:
    """Every run.json key an option stores, in table order, each once."""
    return list(dict.fromkeys(o.key for o in RUN_OPTIONS if o.key))


def options_for(key: str) -> list[Option]:
    return [o for o in RUN_OPTIONS if o.key == key]


def stored_types() -> dict[str, tuple[type, ...]]:
    """run.json's schema: key -> the types its value may have."""
    types = {key: options_for(key)[0].stored for key in stored_keys()}
    return {**types, **EXTRA_STORED}


def add_options(
    parser: argparse.ArgumentParser,
    options: Sequence[Option] = RUN_OPTIONS,
    with_defaults: bool = False,
) -> None:
    """``options`` on ``parser``; ``with_defaults``: argparse fills in the table's
    defaults (``run`` resolves them itself, after run.json: see ``Option.add_to``)."""
    for option in options:
        option.add_to(parser, with_defaults)


def add_plugin_options(parser: argparse.ArgumentParser) -> None:
    add_options(parser, PLUGIN_OPTIONS)


# The option table of each command, as docs/cli.md shows it between
# ``<!-- NAME-options -->`` markers; run's shows the run.json columns too.
DOCUMENTED: dict[str, tuple[Option, ...]] = {
    "run": RUN_OPTIONS + PLUGIN_OPTIONS,
    "fuzz": FUZZ_OPTIONS + PLUGIN_OPTIONS,
    "data": DATA_OPTIONS,
}


def markdown_table(command: str = "run") -> str:
    """The option table of ``command`` in docs/cli.md (a test keeps the file equal to this)."""
    stored = command == "run"
    head = ["option", "run.json key", "default", "--resume", "what"]
    head = head if stored else ["option", "default", "what"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for o in DOCUMENTED[command]:
        flag = o.flag if o.is_flag else f"{o.flag} {o.metavar or o.dest.upper()}"
        cells = [f"`{flag}`", o.default_text(), o.help]
        if stored:
            key = o.key or ("plugins" if o in PLUGIN_OPTIONS else "")
            resume = o.on_resume or (
                "must match" if o.identity else ("may change" if o.key else "")
            )
            cells = [cells[0], key, cells[1], resume, cells[2]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
