"""Expectations: a checked-in file of the cells that are not expected to
pass (case x backend x precision [x device] -> expected status, reason, link
and blame), so a run can say which findings are known and which are news.

Format: JSON (the standard library reads it on every Python):
``{"torch": "2.13.0", "entries": [{"case", "backend", "precision", "device",
"status", "blame", "reason", "link"}, ...]}``; cells absent from the file are
expected to pass. A suite registers its file with :func:`register_file`;
a cell of that suite is judged against it (:func:`lookup`); other suites'
cases keep their :class:`KnownFailure` marks.

On each row (:func:`apply`, through the pipeline's known-failure step):
- a non-pass row matching an entry becomes ``xfail`` (``expectation``:
  ``expected``, or ``changed`` when the status differs from the entry's);
- a pass row matching an entry keeps ``pass`` with ``expectation``
  ``unexpected pass``;
- a fail/error/crash/timeout with no entry is a ``new failure``.
Every non-pass row gets a ``blame`` (the entry's, else :mod:`blame`'s guess).
``run --strict`` fails on new failures, changed statuses and unexpected passes;
``run --update-expectations`` rewrites the file from the run for review.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torchparity._core.status import BAD_STATUSES, Status
from torchparity.cases.case import Case, KnownFailure
from torchparity.verdicts import blame as blame_mod

STRICT_FINDINGS = ("new failure", "changed", "unexpected pass")
FILES: dict[str, Path] = {}  # suite -> its expectations file
_LOADED: dict[str, dict[tuple[str, str, str, str], KnownFailure]] = {}  # suite -> key -> mark


@dataclass(frozen=True)
class Expectation:
    case: str
    backend: str
    precision: str
    status: str
    blame: str
    reason: str = ""
    link: str = ""
    device: str = "*"

    def key(self) -> tuple[str, str, str, str]:
        return (self.case, self.backend, self.precision, self.device)


class ExpectationsError(ValueError):
    """A malformed expectations file (the message names the entry)."""


def register_file(suite: str, path: Path) -> None:
    """``suite``'s expectations live in ``path``: its cells are judged against
    them, and --update-expectations rewrites it. Each suite has its own file,
    since a selection that caps samples per cell may pass where the full one fails."""
    FILES[suite] = Path(path)
    _LOADED.pop(suite, None)


def lookup(suite: str, case: str, backend: str, device: str, precision: str) -> KnownFailure | None:
    """The expectation of a cell of ``suite`` as a mark (None: expected to pass)."""
    if suite not in FILES:
        return None
    if suite not in _LOADED:
        _LOADED[suite] = {
            e.key(): mark for e in load(FILES[suite]) for mark in known_failures([e])[e.case]
        }
    marks = _LOADED[suite]
    return marks.get((case, backend, precision, device)) or marks.get(
        (case, backend, precision, "*")
    )


def load(path: Path) -> list[Expectation]:
    """The entries of ``path`` (none when it does not exist)."""
    if not Path(path).is_file():
        return []
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = [Expectation(**e) for e in data.get("entries", [])]
    except (ValueError, TypeError) as exc:
        raise ExpectationsError(f"{path}: {exc}") from None
    for e in entries:
        if e.blame not in blame_mod.CATEGORIES:
            raise ExpectationsError(
                f"{path}: {e.case}/{e.backend}/{e.precision}: blame "
                f"{e.blame!r} not one of {', '.join(blame_mod.CATEGORIES)}"
            )
    return entries


def save(path: Path, entries: Iterable[Expectation], torch_version: str) -> None:
    """Write ``entries`` sorted, one a line, so a review reads the diff."""
    ordered = sorted(entries, key=Expectation.key)
    lines = ",\n".join(json.dumps(asdict(e), ensure_ascii=False) for e in ordered)
    text = f'{{"torch": {json.dumps(torch_version)},\n"entries": [\n{lines}\n]}}\n'
    Path(path).write_text(text, encoding="utf-8", newline="\n")


def known_failures(entries: Iterable[Expectation]) -> dict[str, list[KnownFailure]]:
    """case -> its KnownFailure marks (the form the pipeline applies)."""
    marks: dict[str, list[KnownFailure]] = {}
    for e in entries:
        marks.setdefault(e.case, []).append(
            KnownFailure(
                e.reason or f"expected {e.status}",
                backend=e.backend,
                device=e.device,
                precision=e.precision,
                link=e.link,
                status=e.status,
                blame=e.blame,
            )
        )
    return marks


def apply(case: Case | None, cell: Any, row: dict[str, Any]) -> dict[str, Any]:
    """Mark ``row`` against the suite's expectations file (else the case's
    known-failure marks) and give it a blame (see the module doc)."""
    backend, device, precision = cell.backend, cell.device, cell.precision
    if cell.suite in FILES:
        mark = lookup(cell.suite, cell.case, backend, device, precision)
    else:
        mark = case.known_failure(backend, device, precision) if case is not None else None
    status = row.get("status")
    if status in BAD_STATUSES and mark is not None:
        row["xfail_of"] = status
        row["status"] = Status.XFAIL.value
        row["reason"] = f"{mark.describe()}; was {status}: {row.get('reason', '')}"
        changed = bool(mark.status) and mark.status != status
        row["expectation"] = "changed" if changed else "expected"
    elif status == Status.PASS and mark is not None and mark.status:
        row["expectation"] = "unexpected pass"
        row["reason"] = f"unexpected pass: expected {mark.status} ({mark.reason})"
    elif status == Status.PASS and mark is not None:
        # A catalog mark is a glob over cells, not a per-cell expectation: its
        # passing cells are noted, not a --strict finding.
        row["expectation"] = "known failure did not reproduce"
    elif status in BAD_STATUSES:
        row["expectation"] = "new failure"
    if mark is not None:
        row["expected_status"] = mark.status or "fail"
    if row.get("status") != Status.PASS:
        if mark is not None and mark.blame and row.get("status") == Status.XFAIL:
            row["blame"], row["blame_source"] = mark.blame, "expectations"
        else:
            row["blame"], row["blame_source"] = blame_mod.classify(backend, row), "rule"
    return row


def strict_findings(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that fail ``--strict``: bad statuses, changed statuses, unexpected passes."""
    return [
        r
        for r in rows
        if r.get("status") in BAD_STATUSES or r.get("expectation") in STRICT_FINDINGS
    ]


def updated(existing: list[Expectation], rows: Iterable[dict[str, Any]]) -> list[Expectation]:
    """``existing`` rewritten from ``rows``: a passing cell's entry goes, a
    non-pass cell gets an entry (keeping a reviewed reason, link and blame when
    its status is unchanged), cells the run did not hold keep theirs."""
    by_key = {e.key(): e for e in existing}
    for row in rows:
        status = row.get("xfail_of") or row.get("status")
        if status == Status.SKIP:
            continue  # skips carry their reason in the row; they are not expectations
        matches = [k for k, e in by_key.items() if _covers(e, row)]
        old = by_key.get(matches[0]) if matches else None
        for k in matches:
            del by_key[k]
        if status not in BAD_STATUSES:
            continue
        key = (row["case"], row["backend"], row["precision"], old.device if old else "*")
        if old is not None and old.status == status:
            by_key[key] = old
            continue
        reason = str(row.get("reason") or "").split("; was ", 1)[-1][:300]
        # A reviewed blame stays; a guessed one is guessed again (the rules may have improved).
        blame = row.get("blame") if row.get("blame_source") == "expectations" else None
        by_key[key] = Expectation(
            row["case"],
            row["backend"],
            row["precision"],
            status,
            blame or blame_mod.classify(row["backend"], row),
            reason,
            old.link if old else "",
            key[3],
        )
    return list(by_key.values())


def _covers(e: Expectation, row: dict[str, Any]) -> bool:
    return (e.case, e.backend, e.precision) == (
        row.get("case"),
        row.get("backend"),
        row.get("precision"),
    ) and e.device in ("*", row.get("device"))
