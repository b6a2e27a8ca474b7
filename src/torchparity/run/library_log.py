"""What libraries say in the run's own process (Python warnings, logging
records, a library's own stream handler such as transformers') goes to the run
directory's worker.log, as the workers' output does: the console keeps
torchparity's lines. Until the run directory exists (planning: case files and
plugins import their libraries) it is held in memory, then written there."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import Any, TextIO


class _Sink(io.TextIOBase):
    """A text stream that holds what it gets until ``attach`` names its file."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.file: TextIO | None = None

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.file is not None:
            self.file.write(text)
            self.file.flush()
        else:
            self.held.append(text)
        return len(text)


_ACTIVE: LibraryLog | None = None


@contextlib.contextmanager
def capturing() -> Iterator[None]:
    """While case files and plugins import: their prints and the console
    handlers they create write to the active ``LibraryLog`` (if any)."""
    if _ACTIVE is None:
        yield
        return
    with contextlib.redirect_stdout(_ACTIVE.sink), contextlib.redirect_stderr(_ACTIVE.sink):
        yield


class LibraryLog:
    """In a ``with`` block: warnings and library logging go to ``attach``'s file.
    Leaving without one (planning failed), a usage error drops what was held
    (its one line stays alone); any other exit prints it on stderr."""

    def __init__(self) -> None:
        self.sink = _Sink()
        self.handler = logging.StreamHandler(self.sink)
        self.handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []

    def _warning(self, message: Any, category: Any, filename: str, lineno: int, *rest: Any) -> None:
        self.sink.write(warnings.formatwarning(message, category, filename, lineno))

    def __enter__(self) -> LibraryLog:
        global _ACTIVE
        _ACTIVE = self
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._warning
        logging.getLogger().addHandler(self.handler)  # the root: lastResort no longer prints
        return self

    def _library_handlers(self, *streams: Any) -> list[logging.StreamHandler]:
        """Stream handlers libraries gave their own loggers, writing to ``streams``
        (the console by default)."""
        streams = streams or (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
        loggers = [
            v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger)
        ]
        return [
            h
            for lg in loggers
            for h in lg.handlers
            if isinstance(h, logging.StreamHandler)
            and h is not self.handler
            and any(getattr(h, "stream", None) is s for s in streams)
        ]

    def attach(self, fd: int) -> None:
        """From now on write to ``fd`` (worker.log, opened for appending), and
        what was held first; console handlers libraries installed meanwhile too."""
        self.sink.file = open(fd, "w", encoding="utf-8", errors="replace")  # noqa: SIM115
        self.sink.write("-- the run's own process: library warnings and logs\n")
        for text in self.sink.held:
            self.sink.write(text)
        self.sink.held.clear()
        self.redirect_library_handlers()

    def redirect_library_handlers(self) -> None:
        for handler in self._library_handlers():
            self._swapped.append((handler, handler.setStream(self.sink)))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _ACTIVE
        _ACTIVE = None
        warnings.showwarning = self._showwarning
        logging.getLogger().removeHandler(self.handler)
        for handler, stream in self._swapped:
            handler.setStream(stream)
        for handler in self._library_handlers(self.sink):  # made while imports printed here
            handler.setStream(sys.stderr)
        if self.sink.file is not None:
            self.sink.file.close()
        elif kind is not None and self.sink.held and kind.__name__ != "UsageError":
            sys.stderr.write("".join(self.sink.held))
