"""The manifest: the OpInfo entries of a torch release (name, variant, dtypes
per device, nondeterminism), so the suite registers its cases without
importing op_db (several seconds) in every process.

``manifest.json`` is checked in for the pinned torch; another release builds
its manifest once (importing op_db) into the user's cache directory.
Regenerate the checked-in one with ``python -m torchparity.suites.opinfo.manifest``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from torchparity.suites.opinfo import guard

CHECKED_IN = Path(__file__).with_name("manifest.json")


def _cache_path() -> Path:
    from torchparity._core.cache import (
        default_cache_dir,  # the per-user cache, by the OS's convention
    )

    return default_cache_dir() / f"opinfo-manifest-{guard.torch_release()}.json"


def build() -> dict[str, Any]:
    """The manifest of this torch's op_db (imports it; raises OpInfoUnavailable)."""
    entries = []
    for entry in guard.op_db():
        dtypes = {}
        for device in ("cpu", "cuda"):
            supported = entry.supported_dtypes(device)
            dtypes[device] = sorted(str(d).removeprefix("torch.") for d in supported)
        entries.append(
            {
                "name": guard.full_name(entry),
                "op": entry.name,
                "variant": entry.variant_test_name,
                "dtypes": dtypes,
                "nondeterministic": bool(entry.has_nondeterministic_output),
            }
        )
    return {"torch": guard.torch_release(), "module": guard.module_name(), "entries": entries}


def load() -> dict[str, Any]:
    """The manifest for this torch: checked in, cached, or built now."""
    default_module = guard.module_name() == guard.OPINFO_MODULE
    if default_module and CHECKED_IN.is_file():
        data = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
        if data.get("torch") == guard.torch_release():
            return data
    cache = _cache_path()
    if default_module and cache.is_file():
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except ValueError:  # torn cache file: rebuilt below
            pass
    data = build()
    if default_module:
        from torchparity._core.files import atomic_write_text

        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache, json.dumps(data))
    return data


def main() -> int:
    data = build()
    lines = ",\n".join(
        json.dumps(e, sort_keys=True) for e in data["entries"]
    )  # one entry a line: readable diffs
    text = (
        f'{{"torch": {json.dumps(data["torch"])}, "module": {json.dumps(data["module"])},\n'
        f'"entries": [\n{lines}\n]}}\n'
    )
    CHECKED_IN.write_text(text, encoding="utf-8", newline="\n")
    print(
        f"{CHECKED_IN}: {len(data['entries'])} entries for torch {data['torch']}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
