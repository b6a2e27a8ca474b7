"""The run directory: every file name in it, and every read and write of it.

```
<run-dir>/
  env.json          the environment (torchparity._core.environment)   } both carry
  run.json          the selection, for --resume                      } format_version
  results.jsonl     rows, appended and fsynced as each is known; a cell's later
                    line supersedes its earlier one (a verdict with partial timing,
                    then the row with every round); compacted to one line per cell
                    when a run completes
  rounds.jsonl      every finished timing round of every cell (its samples), appended
                    and fsynced as it finishes: what --resume builds the timing from
  results.csv       summary.md  report.html      rendered (atomically replaced)
  outputs/          each cell's output leaves (.npz, no pickle)
  divergences.jsonl divergences.csv divergences/  fuzz findings (large inputs as .npy)
  compare.md  compare.html                        after `compare`
  cache/            the run's own references under --no-cache
  errors/           full text of error messages too long for a row
  run.lock          held while a run writes here (pid, host, start time)
  worker.log        what the worker processes printed (library warnings, IR dumps,
                    a crash's last words): appended, never shown on the console
  localization/     per-layer tables of localized cells (.csv, .json) and their
                    minimal reproducers (-repro.py, -inputs.npz)
  samples/          worst samples of multi-sample (OpInfo) cells (.pt, tensors only)
```

Other modules name none of these files: they ask a ``RunDir``. Reading is
lenient where a crash can leave damage (a torn last line is skipped and cut
before the next append) and strict about shape (``RunDirError``). env.json and
run.json carry the directory's ``format_version``: a directory written in a
format this program does not know (a newer torchparity's) is refused, never
half-read.

A run writes inside its directory only: every path a write uses is checked
(``RunDir.inside``) to lie under the directory with no symbolic link on the
way and no special file (a FIFO) at its end, and ``check_tree`` refuses a
directory holding such links before a run starts (``RunDirUnsafe``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchparity._core import row as row_mod
from torchparity._core.files import atomic_write_text, safe_file_stem
from torchparity._core.row import Row

ENV_JSON = "env.json"
RUN_JSON = "run.json"
RESULTS_JSONL = "results.jsonl"
ROUNDS_JSONL = "rounds.jsonl"
RESULTS_CSV = "results.csv"
SUMMARY_MD = "summary.md"
REPORT_HTML = "report.html"
OUTPUTS_DIR = "outputs"
DIVERGENCES_JSONL = "divergences.jsonl"
DIVERGENCES_CSV = "divergences.csv"
SAMPLES_DIR = "samples"  # worst samples of multi-sample (OpInfo) cells, for replay
DIVERGENCE_INPUTS_DIR = "divergences"  # large inputs of fuzz findings (.npy)
COMPARE_MD = "compare.md"
COMPARE_HTML = "compare.html"
LOCALIZATION_DIR = "localization"
GENERATION_DIR = "generation"  # per-prompt detail of generate cells (docs/generation.md)
CACHE_DIR = "cache"
ERRORS_DIR = "errors"
LOCK_FILE = "run.lock"
WORKER_LOG = "worker.log"
# What a run appends to or writes into: checked before a run starts. (Rendered
# files, env.json and run.json are replaced by a rename, never written through.)
WRITTEN_DIRS = (
    OUTPUTS_DIR,
    SAMPLES_DIR,
    DIVERGENCE_INPUTS_DIR,
    LOCALIZATION_DIR,
    ERRORS_DIR,
    GENERATION_DIR,
)
WRITTEN = (RESULTS_JSONL, DIVERGENCES_JSONL, WORKER_LOG, CACHE_DIR, *WRITTEN_DIRS)


LOG_LIMIT_ENV = "TORCHPARITY_WORKER_LOG_LIMIT"  # bytes; default WORKER_LOG_LIMIT
WORKER_LOG_LIMIT = 50_000_000
_CUT_MARK = b"-- worker.log: "


def log_limit() -> int:
    try:
        return max(4096, int(os.environ.get(LOG_LIMIT_ENV, WORKER_LOG_LIMIT)))
    except ValueError:
        return WORKER_LOG_LIMIT


def cap_log(path: Path, limit: int | None = None) -> int:
    """Cut ``path`` to its last quarter of ``limit`` bytes (at a line start) when
    it is over ``limit``, headed by a line saying how many bytes were cut in
    all; returns the bytes cut now. Writers that append (O_APPEND) go on at the
    new end. Only a regular file is touched."""
    limit = limit or log_limit()
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size <= limit:
            return 0
        with open(path, "r+b") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(200)
            fh.seek(max(0, size - limit // 4))
            tail = fh.read()
            start = tail.find(b"\n") + 1
            tail = tail[start:] if 0 < start < len(tail) else tail
            before = 0
            if head.startswith(_CUT_MARK):
                digits = head[len(_CUT_MARK) :].split(b" ", 1)[0]
                before = int(digits) if digits.isdigit() else 0
            cut = size - len(tail)
            mark = (
                _CUT_MARK
                + f"{before + cut} bytes of earlier output cut (the log keeps its tail)\n".encode()
            )
            fh.seek(0)
            fh.write(mark + tail)
            fh.truncate()
        return cut
    except OSError:
        return 0


def start_log_cap(path: Path, interval_s: float = 1.0) -> None:
    """Cap ``path`` every ``interval_s`` seconds from a daemon thread, for the
    life of this process (a worker whose model prints without end)."""
    import threading

    def watch() -> None:
        while True:
            cap_log(path)
            time.sleep(interval_s)

    threading.Thread(target=watch, name="worker-log-cap", daemon=True).start()


# The run directory's format: raise it when a file changes meaning, so an older
# torchparity refuses a directory it would misread. Files written before the
# format was versioned read as version 1.
FORMAT_VERSION = 1
FORMAT_KEY = "format_version"


class RunDirError(Exception):
    """A path that is not a readable run directory, or a file in it of the wrong shape."""


class RunDirLocked(RunDirError):
    """Another live process is writing into the run directory."""


class RunDirUnsafe(RunDirError):
    """A path a run would write leads outside the run directory (a symbolic
    link on the way) or is not a regular file."""


def _open_append(path: Path) -> int:
    """An append-only descriptor on ``path`` that never follows a link at its end."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags, 0o644)


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line (a write interrupted by a kill). Returns bytes removed."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(path, "r+b") as fh:
        fh.truncate(keep)
    return len(data) - keep


class JsonlWriter:
    """Appends records to a JSONL file, one flushed and fsynced line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(path)
        self._fh = os.fdopen(_open_append(path), "a", encoding="utf-8", newline="\n")

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(row_mod.encode(record) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class JsonlContents:
    """The readable records of a JSONL file, and what could not be read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers
    torn_tail: bool = False
    line_numbers: list[int] = field(default_factory=list)  # of each record, 1-based


def read_jsonl(path: Path) -> JsonlContents:
    """Records of ``path``; a torn last line (no newline) and lines that are not
    UTF-8 JSON objects are set aside, never raised."""
    out = JsonlContents()
    if not path.is_file():
        return out
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        out.torn_tail = True
        lines.pop()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            out.bad_lines.append(number)
            continue
        if isinstance(record, dict):
            out.records.append(record)
            out.line_numbers.append(number)
        else:
            out.bad_lines.append(number)
    return out


def _not_a_row(row: dict[str, Any]) -> str:
    """Why a JSON object is no row ("" when it is one): a row has a status and
    names its cell, by ``cell_id`` or by all of the cell columns."""
    if row.get("status") in (None, ""):
        return "not a row: no status"
    missing = [c for c in row_mod.CELL_COLUMNS if row.get(c) in (None, "")]
    if row.get("cell_id") in (None, "") and missing:
        return f"not a row: no cell_id, and no {', '.join(missing)}"
    return ""


def read_rows(path: Path) -> list[Row]:
    """Rows of a results.jsonl (later row of a cell wins), each bounded as it is
    read (``bounded_row``); ``RunDirError`` naming the line on a row of the
    wrong shape (wrong types, no status, or nothing naming its cell)."""
    rows: dict[str, Row] = {}
    contents = read_jsonl(path)
    for number, record in zip(contents.line_numbers, contents.records, strict=True):
        try:
            row = row_mod.decode(bounded_row(record))
            why = _not_a_row(row)
            if why:
                raise row_mod.RowError(why)
        except row_mod.RowError as exc:
            raise RunDirError(f"{path}: line {number}: {exc}") from None
        rows[str(row.get("cell_id") or f"#{number}")] = row
    return list(rows.values())


REASON_LIMIT = 500  # characters of a row's reason
TEXT_LIMIT = 20_000  # characters of any other text field (traceback)
LIST_LIMIT = 100_000  # items of a list field (samples_ms, leaf_names)


def _cut(value: str, keep: int) -> str:
    """``value`` cut to ``keep`` characters, marked, with a digest of the whole so
    two long names that share a prefix stay distinct."""
    digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:8]
    return f"{value[:keep]} [... {len(value) - keep} more characters, sha256 {digest}]"


def _bounded_value(key: str, value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        keep = REASON_LIMIT if key == "reason" else TEXT_LIMIT
        return _cut(value, keep) if len(value) > keep else value
    if isinstance(value, list) and depth < 4:
        return [_bounded_value(key, v, depth + 1) for v in value[:LIST_LIMIT]]
    if isinstance(value, dict) and depth < 4:
        items = list(value.items())[:LIST_LIMIT]
        return {k: _bounded_value(k, v, depth + 1) for k, v in items}
    return value


def bounded_row(record: dict[str, Any]) -> dict[str, Any]:
    """A row read from disk with the writer's bounds applied again (the file
    may not come from a writer that kept them): reasons cut at ``REASON_LIMIT``
    characters, other text at ``TEXT_LIMIT``, lists at ``LIST_LIMIT`` items."""
    return {k: _bounded_value(k, v) for k, v in list(record.items())[:LIST_LIMIT]}


class BoundedWriter:
    """The results writer: every row bounded (``RunDir.bounded``) before it is appended."""

    def __init__(self, writer: JsonlWriter, run_dir: RunDir) -> None:
        self._writer, self._run_dir = writer, run_dir

    def append(self, record: dict[str, Any]) -> None:
        self._writer.append(self._run_dir.bounded(record))


def _json_records(folder: Path, key: str) -> list[dict[str, Any]]:
    """The readable JSON objects of ``folder/*.json`` holding a list under ``key``
    (regular files only; unreadable or foreign files skipped)."""
    records: list[dict[str, Any]] = []
    if not folder.is_dir():
        return records
    for path in sorted(folder.glob("*.json")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get(key), list):
            records.append(record)
    return records


def _check_format(path: Path, version: Any) -> None:
    """``RunDirError`` unless ``version`` is a format this program reads."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RunDirError(
            f"{path}: unknown {FORMAT_KEY} {json.dumps(version)[:40]}; "
            f"this torchparity reads format versions 1 to {FORMAT_VERSION}"
        )
    if version > FORMAT_VERSION:
        raise RunDirError(
            f"{path} has {FORMAT_KEY} {version}, newer than this torchparity reads "
            f"(1 to {FORMAT_VERSION}); upgrade torchparity to read it"
        )


def _pid_alive(pid: int) -> bool:
    try:
        import psutil
    except ImportError:  # psutil is a dependency; this is the POSIX fallback
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    return bool(psutil.pid_exists(pid))


def _stale(holder: dict[str, Any], path: Path) -> bool:
    """A lock whose holder is a dead process on this host, or an unreadable one
    older than a minute (a holder is killed between creating and writing it)."""
    if not holder:
        try:
            return _dt.datetime.now().timestamp() - path.stat().st_mtime > 60
        except OSError:
            return True
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid != os.getpid() and not _pid_alive(pid)


class RunDir:
    """One run directory. Paths are properties; reads and writes are methods."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- paths -----------------------------------------------------------------
    env_json = property(lambda self: self.path / ENV_JSON)
    run_json = property(lambda self: self.path / RUN_JSON)
    results_jsonl = property(lambda self: self.path / RESULTS_JSONL)
    rounds_jsonl = property(lambda self: self.path / ROUNDS_JSONL)
    results_csv = property(lambda self: self.path / RESULTS_CSV)
    summary_md = property(lambda self: self.path / SUMMARY_MD)
    report_html = property(lambda self: self.path / REPORT_HTML)
    outputs_dir = property(lambda self: self.path / OUTPUTS_DIR)
    divergences_jsonl = property(lambda self: self.path / DIVERGENCES_JSONL)
    divergences_csv = property(lambda self: self.path / DIVERGENCES_CSV)
    divergence_inputs = property(lambda self: self.path / DIVERGENCE_INPUTS_DIR)
    samples_dir = property(lambda self: self.path / SAMPLES_DIR)
    compare_md = property(lambda self: self.path / COMPARE_MD)
    compare_html = property(lambda self: self.path / COMPARE_HTML)
    default_cache = property(lambda self: self.path / CACHE_DIR)
    errors_dir = property(lambda self: self.path / ERRORS_DIR)
    lock_file = property(lambda self: self.path / LOCK_FILE)
    worker_log = property(lambda self: self.path / WORKER_LOG)
    localization_dir = property(lambda self: self.path / LOCALIZATION_DIR)
    generation_dir = property(lambda self: self.path / GENERATION_DIR)

    def has_results(self) -> bool:
        return self.results_jsonl.is_file()

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    # -- write safety ----------------------------------------------------------
    def inside(self, path: Path, replaced: bool = False) -> Path:
        """``path`` (a path under the run directory) when writing it stays inside:
        no component below the directory is a symbolic link or leaves it, and
        an existing file there is a regular file. Else ``RunDirUnsafe``. A file
        ``replaced`` by an atomic rename may itself be a link or a FIFO: the
        rename replaces it, nothing is written through it."""
        try:
            relative = Path(path).relative_to(self.path)
        except ValueError:
            raise RunDirUnsafe(f"{path} is not inside the run directory {self.path}") from None
        current = self.path
        for i, part in enumerate(relative.parts):
            current = current / part
            last = i == len(relative.parts) - 1
            if part in ("..", ".") or (current.is_symlink() and not (replaced and last)):
                raise RunDirUnsafe(
                    f"{self.path}: {relative.as_posix()} leads outside the run directory "
                    f"({current} is a symbolic link); a run writes inside its directory only: "
                    "remove the link or choose another --out"
                )
        if replaced or current.is_symlink():
            return current
        if current.exists() and not (current.is_file() or current.is_dir()):
            raise RunDirUnsafe(
                f"{self.path}: {relative.as_posix()} is not a regular file; "
                "remove it or choose another --out"
            )
        return current

    def check_tree(self) -> None:
        """Refuse (``RunDirUnsafe``) a run directory where a file or folder a run
        writes is a symbolic link or a special file, or holds a link among its files."""
        for name in WRITTEN:
            path = self.inside(self.path / name)
            if path.is_dir() and name in WRITTEN_DIRS:
                for child in path.iterdir():
                    self.inside(child)

    # -- env.json and run.json -------------------------------------------------
    def _read_object(self, path: Path) -> dict[str, Any]:
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{path} is unreadable: {type(exc).__name__}") from None
        if not isinstance(value, dict):
            raise RunDirError(f"{path} must hold a JSON object, not {type(value).__name__}")
        _check_format(path, value.get(FORMAT_KEY, 1))
        return value

    def _write_object(self, path: Path, value: dict[str, Any], **dump: Any) -> Path:
        stamped = {**value, FORMAT_KEY: FORMAT_VERSION}
        return atomic_write_text(
            self.inside(path, replaced=True), json.dumps(stamped, **dump) + "\n"
        )

    def read_env(self) -> dict[str, Any]:
        """env.json, or {} when the run has none."""
        return self._read_object(self.env_json) if self.env_json.is_file() else {}

    def write_env(self, env: dict[str, Any]) -> Path:
        return self._write_object(self.env_json, env, indent=2, sort_keys=True)

    def read_selection(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise RunDirError(f"{self.path} is not a run directory (no {RUN_JSON})")
        return self._read_object(self.run_json)

    def write_selection(self, selection: dict[str, Any]) -> Path:
        return self._write_object(self.run_json, selection, indent=2)

    # -- results ---------------------------------------------------------------
    def rows(self) -> list[Row]:
        return read_rows(self.results_jsonl)

    def done_cell_ids(self) -> set[str]:
        """Cells whose row is final (a row with partial timing is not)."""
        return {str(r.get("cell_id")) for r in self.rows() if not row_mod.timing_partial(r)}

    def partial_rows(self) -> dict[str, Row]:
        """Rows whose verdict is final but whose timing has rounds still to come, by cell id."""
        return {str(r.get("cell_id")): r for r in self.rows() if row_mod.timing_partial(r)}

    def compact_results(self) -> bool:
        """Rewrite results.jsonl with one line per cell (its last) when a cell
        has several; never when a line is unreadable (it would be dropped
        silently). True when rewritten."""
        contents = read_jsonl(self.results_jsonl)
        if contents.bad_lines or contents.torn_tail:
            return False
        last = {str(r.get("cell_id") or f"#{i}"): r for i, r in enumerate(contents.records)}
        if len(last) == len(contents.records):
            return False
        atomic_write_text(
            self.results_jsonl, "".join(row_mod.encode(r) + "\n" for r in last.values())
        )
        return True

    @contextmanager
    def rounds_writer(self) -> Iterator[JsonlWriter]:
        with JsonlWriter(self.rounds_jsonl) as writer:
            yield writer

    def read_rounds(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Finished timing rounds by cell id and round index (a later record of
        the same round wins); records without a cell id and round index are skipped."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for record in read_jsonl(self.rounds_jsonl).records:
            cell, index = record.get("cell_id"), record.get("round")
            if isinstance(cell, str) and isinstance(index, int) and index >= 0:
                out.setdefault(cell, {})[index] = record
        return out

    def damage_note(self) -> str | None:
        """One line naming the lines of results.jsonl that could not be read
        (skipped by every reader), or None when there are none."""
        contents = read_jsonl(self.results_jsonl)
        parts = []
        if contents.bad_lines:
            shown = ", ".join(str(n) for n in contents.bad_lines[:10])
            more = (
                f" and {len(contents.bad_lines) - 10} more" if len(contents.bad_lines) > 10 else ""
            )
            parts.append(f"skipped unreadable line(s) {shown}{more}")
        if contents.torn_tail:
            parts.append("skipped an incomplete last line (an interrupted write)")
        return f"{self.results_jsonl}: {'; '.join(parts)}" if parts else None

    @contextmanager
    def results_writer(self) -> Iterator[BoundedWriter]:
        with JsonlWriter(self.inside(self.results_jsonl)) as writer:
            yield BoundedWriter(writer, self)

    def bounded(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with over-long text fields cut (a 5 MiB exception message must
        not make a 10 MB results file); the full text goes to ``errors/``."""
        long = {
            k: v
            for k, v in record.items()
            if isinstance(v, str) and len(v) > (REASON_LIMIT if k == "reason" else TEXT_LIMIT)
        }
        if not long:
            return record
        stem = safe_file_stem(str(record.get("cell_id") or record.get("case") or "row"))
        path = atomic_write_text(
            self.inside(self.errors_dir / f"{stem}.txt"),
            "".join(f"--- {k} ---\n{v}\n" for k, v in long.items()),
        )
        out = dict(record)
        for key, value in long.items():
            keep = REASON_LIMIT if key == "reason" else TEXT_LIMIT
            out[key] = (
                f"{value[:keep]} [... {len(value) - keep} more characters in {ERRORS_DIR}/{path.name}]"
            )
        out["error_file"] = f"{ERRORS_DIR}/{path.name}"
        return out

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``run.lock`` while writing here: a second run into the same
        directory raises ``RunDirLocked`` naming the holder. A lock left by a
        dead process on this host is taken over. A directory where a run's
        writes would leave it through a link raises ``RunDirUnsafe``."""
        self.create()
        mine = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        for attempt in (1, 2):
            try:
                fd = os.open(self.lock_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._lock_holder()
                if attempt == 1 and _stale(holder, self.lock_file):
                    self.lock_file.unlink(missing_ok=True)
                    continue
                raise RunDirLocked(
                    f"{self.path} is in use by process {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} since {holder.get('started', '?')}; wait for it, "
                    f"choose another --out, or delete {self.lock_file} if that process is gone"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(mine, fh)
            break
        try:
            self.check_tree()  # before anything is written: links out are refused
            yield
        finally:
            if self._lock_holder().get("pid") == mine["pid"]:
                self.lock_file.unlink(missing_ok=True)

    def _lock_holder(self) -> dict[str, Any]:
        try:
            holder = json.loads(self.lock_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return holder if isinstance(holder, dict) else {}

    @contextmanager
    def divergences_writer(self) -> Iterator[JsonlWriter]:
        with JsonlWriter(self.inside(self.divergences_jsonl)) as writer:
            yield writer

    def write_text(self, name: str, text: str) -> Path:
        """A rendered file (summary.md, report.html, compare.md, ...), atomically."""
        if Path(name).name != name:
            raise ValueError(f"not a plain file name: {name!r}")
        return atomic_write_text(self.inside(self.path / name, replaced=True), text)

    def write_csv(self, frame: Any, name: str = RESULTS_CSV) -> Path:
        return self.write_text(name, frame.to_csv(index=False, lineterminator="\n"))

    # -- localization/ ---------------------------------------------------------
    def localization_file(self, cell_id: str, suffix: str) -> Path:
        """``localization/<safe stem of the cell>{suffix}`` (".csv", ".json",
        "-repro.py", "-inputs.npz")."""
        return self.inside(self.localization_dir / f"{safe_file_stem(cell_id)}{suffix}")

    def write_localization(
        self, cell_id: str, table: Any, record: dict[str, Any]
    ) -> dict[str, Path]:
        """A cell's layer table (a DataFrame) as CSV, and the whole record
        (summary and layers) as JSON, atomically."""
        csv_text = table.to_csv(index=False, lineterminator="\n")
        return {
            "csv": atomic_write_text(self.localization_file(cell_id, ".csv"), csv_text),
            "json": atomic_write_text(
                self.localization_file(cell_id, ".json"), row_mod.encode(record) + "\n"
            ),
        }

    def localizations(self) -> list[dict[str, Any]]:
        """Every readable localization record, by cell id; unreadable files skipped."""
        return _json_records(self.localization_dir, "layers")

    # -- generation/ -------------------------------------------------------------
    def write_generation(self, cell_id: str, record: dict[str, Any]) -> Path:
        """A generate cell's per-prompt detail (tokens, first divergence, margins)
        and per-step teacher-forced drift, as ``generation/<cell>.json``."""
        self.inside(self.generation_dir).mkdir(parents=True, exist_ok=True)
        path = self.inside(self.generation_dir / f"{safe_file_stem(cell_id)}.json")
        return atomic_write_text(path, row_mod.encode(record) + "\n")

    def generations(self) -> list[dict[str, Any]]:
        """Every readable generation record; unreadable files skipped."""
        return _json_records(self.generation_dir, "prompts")

    # -- samples/ and worker.log -----------------------------------------------
    def sample_file(self, cell_id: str) -> Path:
        """``samples/<safe stem of the cell>.pt``, checked for writing."""
        return self.inside(self.samples_dir / f"{safe_file_stem(cell_id)}.pt")

    def open_worker_log(self) -> int:
        """An append-only descriptor on worker.log (checked, never through a link)."""
        path = self.inside(self.worker_log)
        path.parent.mkdir(parents=True, exist_ok=True)
        return _open_append(path)

    def cap_worker_log(self) -> int:
        """Keep worker.log under its limit (see ``cap_log``); bytes cut now."""
        return cap_log(self.worker_log)

    # -- outputs/ --------------------------------------------------------------
    def output_file(self, cell_id: str) -> Path:
        return self.outputs_dir / f"{safe_file_stem(cell_id)}.npz"

    def stored_output(self, file_name: Any) -> Path | None:
        """The regular file ``outputs/<file_name>`` of a row's ``output_file``, or
        None when the name is not a plain file name there (a row read from disk is
        data: it never steers a read outside the run directory, or into a FIFO)."""
        if not isinstance(file_name, str) or not file_name or Path(file_name).name != file_name:
            return None
        if file_name in (".", "..") or "\\" in file_name:
            return None
        path = self.outputs_dir / file_name
        return path if path.is_file() and not path.is_symlink() else None

    def save_outputs(self, cell_id: str, names: list[str], leaves: list[Any]) -> Path:
        """A cell's output leaves into outputs/ (see output_store.py for the format)."""
        from torchparity._core import (
            output_store,  # numpy and torch: only where outputs are touched
        )

        return output_store.save(self.inside(self.output_file(cell_id)), cell_id, names, leaves)

    def load_outputs(self, file_name: Any) -> list[Any] | None:
        """The stored leaves a row's ``output_file`` names, or None when it names
        no regular file in outputs/ or the file is unreadable (truncated, foreign)."""
        from torchparity._core import output_store

        path = self.stored_output(file_name)
        if path is None:
            return None
        try:
            return output_store.load(path)
        except Exception:  # noqa: BLE001 - a damaged file is missing data, not a crash
            return None
