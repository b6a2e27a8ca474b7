"""Does localization name the layer where a divergence was planted, and how long does it take?

    python benchmarks/validate_localization.py [--quick] [--threads 1] [--out FILE]
    nox -s localize

Three groups of cells (the models and the ``perturb`` backend are in
benchmarks/planted_cases.py):

- **real**: an fp16 overflow planted in ``pool`` (eager, torch.export,
  TorchScript scripted and traced, at fp16; eager under amp-fp16 autocast) and the ONNX exporter's logaddexp overflow planted in ``gate``
  (onnxruntime at fp32); the culprit must be the planted layer;
- **perturbed**: every built-in model with one submodule's output moved by 5 %
  of its RMS (the ``perturb`` backend), three targets per model (the first,
  middle and last layer with parameters); the culprit must be the target;
- **honest**: built-in models at eager fp16, and the overflow model on
  torch.compile and AOTInductor (which compute fp16 exp in fp32), all of which
  pass: no culprit may be named.

Prints one line per localization and a summary: the hit rate (target >= 95 %)
and the seconds per localization. Exit 1 when the hit rate misses the target
or an honest cell gets a culprit.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from torchparity.axes.matrix import Cell  # noqa: E402
from torchparity.backends.aoti import _compiler_missing  # noqa: E402
from torchparity.cases.case import CASES, load_all, suite_cases  # noqa: E402
from torchparity.cell.context import RunSettings  # noqa: E402
from torchparity.diagnose import localize as loc_mod  # noqa: E402

PLANTED = ROOT / "benchmarks" / "planted_cases.py"
TARGET_RATE = 0.95


@dataclass
class Trial:
    group: str
    case: str
    backend: str
    precision: str
    expected: str | None
    options: dict

    def cell(self) -> Cell:
        return Cell(self.case, "model", "", "cpu", self.precision, self.backend)


def perturb_targets(case: str, seed: int = 0) -> list[str]:
    """The first, middle and last layer with parameters of ``case``'s model."""
    from torchparity.cases.inputs import cast_inputs
    from torchparity.cases.reference import build_inputs, build_module

    module = build_module(CASES[case], seed)
    inputs = cast_inputs(build_inputs(CASES[case], seed), torch.float64, torch.device("cpu"))
    layers, _ = loc_mod.record_reference(copy.deepcopy(module).to(torch.float64), inputs)
    with_params = [c.path for c in loc_mod.select_layers(layers) if c.has_params]
    picks = [with_params[0], with_params[len(with_params) // 2], with_params[-1]]
    return list(dict.fromkeys(picks))


def trials(quick: bool) -> list[Trial]:
    out = []
    real = ["eager", "export", "torchscript", "torchscript-trace"]
    out += [Trial("real", "planted_overflow", b, "fp16", "pool", {}) for b in real]
    out.append(Trial("real", "planted_overflow", "eager", "amp-fp16", "pool", {}))  # autocast
    # torch.compile and AOTInductor compute fp16 exp in fp32: the planted
    # overflow does not happen there, and no layer may be blamed.
    absorbed = [] if quick else ["compile"] + (["aoti"] if not _compiler_missing() else [])
    out += [Trial("honest", "planted_overflow", b, "fp16", None, {}) for b in absorbed]
    out.append(Trial("real", "planted_logaddexp", "onnxruntime", "fp32", "gate", {}))
    models = [c.name for c in suite_cases("models")]
    for case in models[:4] if quick else models:
        for target in perturb_targets(case)[: 1 if quick else 3]:
            out.append(
                Trial("perturbed", case, "perturb", "fp32", target, {"perturb": {"target": target}})
            )
    for case in models[:3] if quick else models:
        out.append(Trial("honest", case, "eager", "fp16", None, {}))
    return out


def run(trial: Trial, budget: float, threads: int) -> tuple[str | None, float, str]:
    settings = RunSettings(backend_options=trial.options, threads=threads)
    try:
        loc, _, _ = loc_mod.localize(trial.cell(), settings, budget)
    except loc_mod.LocalizeError as exc:
        return None, 0.0, f"not localized: {exc}"
    return loc.culprit, loc.seconds, "; ".join(loc.notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few cells of each group")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--budget", type=float, default=loc_mod.DEFAULT_BUDGET_S)
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    torch.set_num_threads(args.threads)
    load_all([("file", str(PLANTED))])
    lines = [
        "| group | cell | expected | culprit | ok | seconds | notes |",
        "|---|---|---|---|---|---|---|",
    ]
    results: list[tuple[Trial, bool, float]] = []
    began = time.perf_counter()
    for trial in trials(args.quick):
        culprit, seconds, notes = run(trial, args.budget, args.threads)
        ok = culprit == trial.expected
        results.append((trial, ok, seconds))
        cell = f"{trial.case} {trial.backend}/{trial.precision}"
        line = f"| {trial.group} | {cell} | {trial.expected} | {culprit} | {'yes' if ok else 'NO'} | {seconds:.1f} | {notes[:80]} |"
        lines.append(line)
        print(line, flush=True)
    planted = [(t, ok, s) for t, ok, s in results if t.expected is not None]
    honest = [(t, ok, s) for t, ok, s in results if t.expected is None]
    rate = sum(ok for _, ok, _ in planted) / len(planted) if planted else 0.0
    false_culprits = sum(not ok for _, ok, _ in honest)
    times = [s for _, _, s in results if s > 0]
    by_group = {
        g: [s for t, _, s in results if t.group == g and s > 0]
        for g in ("real", "perturbed", "honest")
    }
    summary = [
        "",
        f"planted layer named: {sum(ok for _, ok, _ in planted)}/{len(planted)} = {rate:.1%} "
        f"(target >= {TARGET_RATE:.0%}); honest cells given a culprit: {false_culprits}/{len(honest)}",
        f"seconds per localization (threads={args.threads}): median {statistics.median(times):.1f}, "
        f"max {max(times):.1f}; "
        + ", ".join(
            f"{g} median {statistics.median(v):.1f} max {max(v):.1f}"
            for g, v in by_group.items()
            if v
        ),
        f"wall {time.perf_counter() - began:.0f} s",
    ]
    print("\n".join(summary))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines + summary) + "\n", encoding="utf-8")
    return 0 if rate >= TARGET_RATE and not false_culprits else 1


if __name__ == "__main__":
    sys.exit(main())
