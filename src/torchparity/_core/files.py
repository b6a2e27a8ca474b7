"""File helpers every writer uses: atomic replacement and names made safe for paths."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a uniquely named temp file and an
    atomic rename: readers never see half a file, and two writers (runs sharing
    a cache) never share a temp name. Every file of a run or cache is written so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp makes the file private (0600); a report or CSV gets the mode any
        # new file would (the umask). The per-user cache's privacy is its 0700 folder.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:
            exc.filename = str(path)  # a full disk's error names the file it was writing
        raise
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """``text`` as UTF-8 with LF line endings, written like :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def safe_file_stem(name: str, limit: int = 120) -> str:
    """A file name stem for any text (case names, cell ids): only characters valid
    on every OS, no path separators or dots-only names, and a short hash of the
    exact text so distinct names stay distinct (also on case-insensitive disks)."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_")[:limit] or "x"
    return f"{readable}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"
