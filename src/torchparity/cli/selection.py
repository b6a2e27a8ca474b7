"""A run's selection: the options of ``torchparity run`` as run.json stores
them. A new run takes them from the command line (and the option table's
defaults); ``--resume`` reads them back from run.json, checks their shape, and
refuses a command line that asks for another run (a different ``identity``
option): the directory then holds one run, and run.json keeps describing it."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

from torchparity._core.rundir import RunDir
from torchparity.axes.scheduler_env import shard_from_env
from torchparity.cases.case import PluginSpec
from torchparity.cli.common import UsageError, plugins, run_dir_errors
from torchparity.cli.options import Option, options_for, stored_keys, stored_types

LOCALIZE_MODES = ("auto", "all", "off")


def selection(args: argparse.Namespace) -> dict[str, Any]:
    """The run's selection, to be stored in run.json; --resume reads it back."""
    stored: dict[str, Any] = {}
    out = args.out
    if args.resume:
        if out is None:
            raise UsageError("--resume needs --out RUN_DIR")
        with run_dir_errors("; nothing to resume"):
            stored = RunDir(out).read_selection()
            RunDir(out).read_env()  # its format version, before anything else is read
        check_stored_selection(stored, RunDir(out).run_json)
        refuse_another_run(args, stored, out)
    elif out is not None and RunDir(out).has_results():
        raise UsageError(f"{out} already holds results; use --resume or another --out")
    sel = {key: _value(key, args, stored) for key in stored_keys()}
    sel["plugins"] = [list(p) for p in resume_plugins(args, stored)]
    return sel


def _value(key: str, args: argparse.Namespace, stored: dict[str, Any]) -> Any:
    """The command line's value for ``key``, else run.json's, else the default."""
    options = options_for(key)
    given = {o.flag: v for o in options if (v := o.given(args)) is not None}
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} contradict each other")
    if given:
        return next(iter(given.values()))
    return stored_value(options[0], stored.get(key, options[0].default))


def stored_value(option: Option, value: Any) -> Any:
    """A run.json value as today's option holds it: a list-valued option's list
    (a copy), also where an older run.json stored one string (``"suite": "models"``)."""
    if option.many and isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, list) else value


def _comparable(option: Option, value: Any) -> Any:
    """A value as two runs compare it: lists as sets (``--backend a,b`` and
    ``b,a`` run the same cells), an automatic shard as the shard it resolves to."""
    if isinstance(value, list):
        return sorted({str(v).strip() for v in value})
    if option.key == "shard" and isinstance(value, str) and value.startswith("auto"):
        try:
            index, count, _ = shard_from_env(value, os.environ)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return f"{index}/{count}"
    return value


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def differences(args: argparse.Namespace, stored: dict[str, Any]) -> list[str]:
    """The identity options the command line gives with a value other than run.json's."""
    out = []
    for key in stored_keys():
        for option in options_for(key):
            value = option.given(args)
            if not option.identity or value is None:
                continue
            was = stored_value(option, stored.get(key, option.default))
            if _comparable(option, value) != _comparable(option, was):
                shown = option.flag if option.is_flag else f"{option.flag} {_shown(value)}"
                out.append(f"{shown} (run.json: {_shown(was)})")
    return out


def refuse_another_run(args: argparse.Namespace, stored: dict[str, Any], out: Path) -> None:
    """--resume finishes the run run.json describes; a different selection is another run."""
    diffs = differences(args, stored)
    if diffs:
        raise UsageError(
            f"--resume finishes the run in {out} as its run.json describes; these differ: "
            f"{'; '.join(diffs)}. Drop them, or start another run with another --out"
        )


def _item_ok(key: str, value: Any) -> bool:
    if key == "plugins":
        return (
            isinstance(value, list) and len(value) == 2 and all(isinstance(x, str) for x in value)
        )
    if key == "batch":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return isinstance(value, str)


def _value_ok(key: str, value: Any, types: tuple[type, ...]) -> bool:
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return False
    if isinstance(value, list):
        return all(_item_ok(key, v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if key in ("min_time", "timeout"):
        return math.isfinite(value) and value > 0
    if key == "localize":
        return value in LOCALIZE_MODES
    return True


def check_stored_selection(stored: dict[str, Any], path: Path) -> None:
    """run.json read back for --resume: every known key of the right type."""
    for key, types in stored_types().items():
        if key in stored and not _value_ok(key, stored[key], types):
            raise UsageError(
                f"{path}: {key!r} has the wrong shape ({json.dumps(stored[key])[:60]}); "
                "not a run.json this program wrote"
            )


def resume_plugins(args: argparse.Namespace, stored: dict[str, Any]) -> list[PluginSpec]:
    """The plugins a run loads: those on the command line. On --resume the ones
    run.json names must be given again (a run directory is data: what it names
    is not executed) unless --trust-run-plugins says to load them."""
    given = plugins(args)
    named = [(str(k), str(t)) for k, t in stored.get("plugins", [])]
    missing = [p for p in named if p not in given]
    if missing and not args.trust_run_plugins:
        flags = " ".join(f"--{'case-file' if k == 'file' else 'plugin'} {t}" for k, t in missing)
        raise UsageError(
            f"the run resumed used {flags}; pass them again (they run as code), "
            "or --trust-run-plugins to load what run.json names"
        )
    return given + missing
