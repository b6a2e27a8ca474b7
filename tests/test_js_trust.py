"""The JavaScript runners' install cannot be turned against the user, through
the real command line: a symbolic link planted in it is never followed (the
install is refused and made again), a file changed after the check is never
what Node runs, the install lives under the run's one cache root, and a
machine that cannot make it (no registry, a read-only cache) is the
environment's fault, said in words."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, cli_command, cli_env, read_rows, run_cli
from torchparity.backends import js_build

JS_CASES = DATA / "js_cases.py"
QUICK = ("--device", "cpu", "--precision", "fp32", "--min-time", "0.01", "--no-isolate")
# Planted in onnxruntime-common's place: writes the marker the moment Node loads it.
PLANTED = "require('fs').writeFileSync({marker}, 'planted');\nmodule.exports = {{}};\n"

pytestmark = pytest.mark.skipif(
    js_build.tools_missing() is not None, reason=js_build.tools_missing() or ""
)


def _offline_npm(tmp_path: Path) -> dict[str, str]:
    """npm with an empty cache of its own and a registry on a closed loopback
    port: any install fails at once, as on a machine with no network."""
    return {
        "npm_config_registry": "http://127.0.0.1:9/",
        "npm_config_cache": str(tmp_path / "npm-cache"),
        "npm_config_fetch_retries": "0",
        "npm_config_update_notifier": "false",
    }


def _plant_install(cache_root: Path, marker: Path) -> Path:
    """A small install sealed with this user's key, as a run made it, then a
    folder symbolic link added at onnxruntime-node/dist/node_modules pointing
    at a planted onnxruntime-common (what Node resolves first from dist/)."""
    install = js_build.runners_root(cache_root) / js_build.install_key()
    for name in js_build.NODE_SCRIPTS:
        (install / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(js_build.SOURCE_DIR / name, install / name)
    package = install / "node_modules" / "onnxruntime-node"
    (package / "dist").mkdir(parents=True)
    (package / "package.json").write_text('{"name": "onnxruntime-node", "main": "dist/index.js"}')
    (package / "dist" / "index.js").write_text("module.exports = require('onnxruntime-common');\n")
    js_build.seal_tree(install)
    planted = cache_root.parent / "planted" / "onnxruntime-common"
    planted.mkdir(parents=True)
    (planted / "package.json").write_text('{"name": "onnxruntime-common", "main": "index.js"}')
    (planted / "index.js").write_text(PLANTED.format(marker=json.dumps(str(marker))))
    (package / "dist" / "node_modules").symlink_to(planted.parent, target_is_directory=True)
    return install


def _node_row(tmp_path: Path, cache_root: Path, env: dict[str, str]) -> dict:
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        *("--case-file", str(JS_CASES), "--suite", "js_trust", "--case", "js_first"),
        *("--backend", "onnxruntime-node"),
        *("--cache-dir", str(cache_root), "--out", str(out), *QUICK),
        env=env,
    )
    rows = read_rows(out)
    assert len(rows) == 1, proc.stderr
    (row,) = rows
    return row


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_symlink_in_the_install_is_refused_and_never_followed(tmp_path):
    marker = tmp_path / "planted-ran"
    cache_root = tmp_path / "cache"
    _plant_install(cache_root, marker)
    # The builders' lock, linked outside: it is replaced, never written through.
    outside = tmp_path / "outside" / "lock-target"
    outside.parent.mkdir()
    lock = js_build.runners_root(cache_root) / f"{js_build.install_key()}.lock"
    lock.symlink_to(outside)
    row = _node_row(tmp_path, cache_root, _offline_npm(tmp_path))
    assert not marker.exists(), "Node loaded the module behind the planted link"
    assert not outside.exists(), "the lock was opened through its link"
    assert row["status"] == "error" and row["blame"] == "environment", row
    reason = row["reason"]
    assert (
        "a new install (a symbolic link in it: node_modules/onnxruntime-node/dist/node_modules)"
        in reason
    )
    # npm's own line (npm 11 writes "npm error"), and what it means for the machine.
    assert "npm could not reach its registry" in reason and "npm error" in reason, reason
    assert "ECONNREFUSED" in reason or "127.0.0.1:9" in reason, reason


def test_a_file_changed_during_the_run_is_not_what_node_runs(js_runners, tmp_path):
    """The second case's module, built after the first cell checked the
    install, appends to the cached node_runner.mjs; the second cell's Node
    runs the private copy of the checked bytes, so the appended code never runs."""
    script = js_runners.directory / "node_runner.mjs"
    original = script.read_bytes()
    marker = tmp_path / "appended-ran"
    out = tmp_path / "run"
    try:
        proc = run_cli(
            "run",
            *("--case-file", str(JS_CASES), "--suite", "js_trust"),
            *("--backend", "onnxruntime-node", "--out", str(out), *QUICK),
            env={"TP_APPEND_TO": str(script), "TP_APPEND_MARKER": str(marker)},
        )
        appended = script.read_bytes() != original
    finally:
        script.write_bytes(original)
    rows = read_rows(out)
    assert appended, "the case did not append (the probe did not happen)"
    assert not marker.exists(), "Node ran code appended after the install was checked"
    assert [r["case"] for r in rows] == ["js_first", "js_second"], proc.stderr
    assert {r["status"] for r in rows} == {"pass"}, [r["reason"] for r in rows]


def _unshare_prefix() -> list[str]:
    """A private mount namespace (root: ``unshare -m``; else as root of a user
    namespace, ``unshare -rm``), where a read-only bind mount is real for
    root too (root ignores file modes, not a read-only mount)."""
    prefix = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    if not shutil.which("unshare"):
        pytest.skip("no unshare here (util-linux)")
    works = subprocess.run([*prefix, "true"], capture_output=True).returncode == 0
    if not works and os.geteuid() != 0:
        pytest.skip("unprivileged user namespaces are off here")
    assert works, "unshare -m fails as root: the read-only cache cannot be made"
    return prefix


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mount namespaces are Linux's")
def test_a_read_only_install_that_needs_rebuilding_is_the_machines_fault(tmp_path):
    cache_root = tmp_path / "cache"
    install = _plant_install(cache_root, tmp_path / "unused")
    (install / "node_modules" / "onnxruntime-node" / "dist" / "node_modules").unlink()
    (install / "core.mjs").write_text("process.exit(9)\n")  # changed since it was sealed
    runners = js_build.runners_root(cache_root)
    out = tmp_path / "run"
    args = [
        *cli_command("run", "--case-file", str(JS_CASES), "--suite", "js_trust"),
        *("--case", "js_first"),
        *("--backend", "onnxruntime-node", "--cache-dir", str(cache_root)),
        *("--out", str(out), *QUICK),
    ]
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    proc = subprocess.run(
        [*_unshare_prefix(), "sh", "-c", script, "sh", str(runners), *args],
        capture_output=True,
        text=True,
        env=cli_env(None),
        timeout=300,
    )
    (row,) = read_rows(out)
    assert row["status"] == "error" and row["blame"] == "environment", (row, proc.stderr)
    assert "a new install (files changed since install)" in row["reason"], row["reason"]
    assert "the file system is read-only" in row["reason"], row["reason"]
    assert (install / "core.mjs").read_text() == "process.exit(9)\n"  # the mount held


def test_npm_error_lines_are_quoted_in_either_spelling():
    npm11 = "npm error code E404\nnpm error 404 Not Found - GET http://r/x - Not found\n"
    npm8 = "npm ERR! code E404\nnpm ERR! 404 Not Found - GET http://r/x - Not found\n"
    for output in (npm11, npm8):
        failure = js_build.npm_failure(output)
        assert type(failure) is js_build.JsInstallError
        assert str(failure) == "npm ci failed: npm error 404 Not Found - GET http://r/x - Not found"
    offline = js_build.npm_failure("npm error code ENOTCACHED\nnpm error request to x failed\n")
    assert isinstance(offline, js_build.JsInstallFault)
    assert js_build.npm_failure("").args == ("npm ci failed: no output",)


@pytest.mark.slow  # a fresh npm ci of the real packages
@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_a_real_install_with_a_planted_link_is_installed_again_and_passes(js_runners, tmp_path):
    marker = tmp_path / "planted-ran"
    root = js_runners.directory.parent.parent
    planted = tmp_path / "planted" / "onnxruntime-common"
    planted.mkdir(parents=True)
    (planted / "package.json").write_text('{"name": "onnxruntime-common", "main": "index.js"}')
    (planted / "index.js").write_text(PLANTED.format(marker=json.dumps(str(marker))))
    link = js_runners.directory / "node_modules" / "onnxruntime-node" / "dist" / "node_modules"
    link.symlink_to(planted.parent, target_is_directory=True)
    row = _node_row(tmp_path, root, {})
    assert not marker.exists(), "Node loaded the module behind the planted link"
    assert row["status"] == "pass", row["reason"]
    how = row["backend_runner_install"]
    assert how.startswith("rebuilt (a symbolic link in it: node_modules/onnxruntime-node/dist"), how
    assert not link.is_symlink()


def test_no_cache_installs_in_a_private_temporary_directory(tmp_path):
    """--no-cache: the install goes to a private temporary directory (removed
    at exit), never the user cache. npm is offline here, so the install fails
    at once; where it was attempted is what this test looks at."""
    default, xdg, scratch = tmp_path / "user-cache", tmp_path / "xdg", tmp_path / "tmp"
    scratch.mkdir()
    env = {
        **_offline_npm(tmp_path),
        "TORCHPARITY_CACHE_DIR": str(default),
        "XDG_CACHE_HOME": str(xdg),
        "TMPDIR": str(scratch),
    }
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        *("--case-file", str(JS_CASES), "--suite", "js_trust", "--case", "js_first"),
        *("--backend", "onnxruntime-node", "--no-cache", "--out", str(out), *QUICK),
        env=env,
    )
    rows = read_rows(out)
    assert len(rows) == 1, proc.stderr
    assert rows[0]["blame"] == "environment" and "npm error" in rows[0]["reason"], rows[0]
    assert "need an install, but npm could not reach" in rows[0]["reason"], rows[0]["reason"]
    assert not list(tmp_path.rglob(js_build.RUNNERS_DIR)), "installed in a cache"
    assert not [p for p in scratch.iterdir() if p.name.startswith("torchparity-js-")]


def test_the_browser_is_served_bytes_checked_when_served(tmp_path):
    """The page's files are hashed as they are served: one changed after the
    install's check is refused (500), never sent to the browser."""
    import threading
    import urllib.error
    import urllib.request
    from http.server import ThreadingHTTPServer

    from torchparity.backends import web_runner

    install_dir = tmp_path / "install"
    for name in ("core.mjs", "web/index.html", "web/page.mjs"):
        (install_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(js_build.SOURCE_DIR / name, install_dir / name)
    js_build.seal_tree(install_dir)
    assert js_build.unverified(install_dir) is None
    install = js_build.JsInstall(install_dir, False, 0.0, manifest=js_build._VERIFIED[install_dir])
    state = web_runner._State(install, web_runner.served_files(install), b"")
    server = ThreadingHTTPServer(("127.0.0.1", 0), web_runner._handler(state))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/core.mjs"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.read() == (install_dir / "core.mjs").read_bytes()
        with open(install_dir / "core.mjs", "a", encoding="utf-8") as fh:
            fh.write("\nfetch('/stolen');\n")  # after the check, during the run
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=30)
        assert refused.value.code == 500
    finally:
        server.shutdown()
        server.server_close()
