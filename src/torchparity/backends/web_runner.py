"""A headless Chromium running onnxruntime-web (wasm) on one .onnx model, driven
over HTTP on the loopback interface: the runner protocol of docs/native-runner.md
with the browser page (backends/js/web/page.mjs) asking for each command.

The server listens on 127.0.0.1 only and serves nothing but the page, the
installed (sealed) onnxruntime-web files, the model and the current inputs.
Every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``: without them the page is not
cross-origin isolated and onnxruntime-web silently runs one thread.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import torch

from torchparity.backends import js_build, tensor_io
from torchparity.backends.js_build import JsInstall
from torchparity.backends.native_client import (
    NativeRunnerCrash,
    NativeRunnerError,
    measurement,
    time_command,
)
from torchparity.timing.measurement import Measurement
from torchparity.timing.timer import TimingConfig

ENV_BROWSER = "TORCHPARITY_CHROMIUM"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOAD_TIMEOUT_S = 120
COMMAND_POLL_S = 20  # the page's long poll for the next command
TYPES = {".html": "text/html", ".mjs": "text/javascript", ".wasm": "application/wasm"}


def find_browser() -> str | None:
    """``$TORCHPARITY_CHROMIUM``, else the first Chromium or Chrome on PATH."""
    if os.environ.get(ENV_BROWSER):
        return shutil.which(os.environ[ENV_BROWSER])
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


_VERSIONS: dict[str, str] = {}


def browser_version(browser: str) -> str:
    """The browser's own version line (e.g. ``Chromium 156.0.8078.114 ...``): the
    user agent of a headless page reduces it to ``156.0.0.0``."""
    if browser not in _VERSIONS:
        try:
            proc = subprocess.run(
                [browser, "--version"], capture_output=True, text=True, timeout=60
            )
            _VERSIONS[browser] = proc.stdout.strip().split(" built on ")[0]
        except (OSError, subprocess.TimeoutExpired):
            _VERSIONS[browser] = ""
    return _VERSIONS[browser]


class _State:
    """What the server hands the page and what the page answers."""

    def __init__(self, install: JsInstall, files: dict[str, str], model: bytes) -> None:
        self.install = install
        self.files = files  # URL path -> install file (the page, core.mjs, onnxruntime-web's dist)
        self.model = model
        self.inputs = b""
        self.outputs = b""
        self.commands: queue.Queue[str] = queue.Queue()
        self.answers: queue.Queue[tuple[str, bytes]] = queue.Queue()


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: the row says what matters
            pass

        def _send(
            self, body: bytes, kind: str = "application/octet-stream", code: int = 200
        ) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = urlparse(self.path).path
            if path == "/command":
                try:
                    command = state.commands.get(timeout=COMMAND_POLL_S)
                except queue.Empty:
                    command = "wait"
                self._send(command.encode(), "text/plain")
            elif path == "/model.onnx":
                self._send(state.model)
            elif path == "/inputs.bin":
                self._send(state.inputs)
            elif path in state.files:
                name = state.files[path]
                try:  # the bytes served are the bytes matched against the seal, now
                    body = js_build.verified_read(state.install, name)
                except js_build.JsInstallError as exc:
                    self._send(str(exc).encode(), "text/plain", 500)
                    return
                self._send(body, TYPES.get(Path(name).suffix, "application/octet-stream"))
            else:
                self._send(b"not found", "text/plain", 404)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if url.path == "/outputs.bin":
                state.outputs = body
            elif url.path == "/answer":
                status = parse_qs(url.query).get("status", ["error"])[0]
                state.answers.put((status, body))
            self._send(b"", "text/plain")

    return Handler


def served_files(install: JsInstall) -> dict[str, str]:
    """The page, the shared module and onnxruntime-web's dist files (names in
    the install's manifest), by URL path."""
    files = {"/index.html": "web/index.html", "/page.mjs": "web/page.mjs", "/core.mjs": "core.mjs"}
    dist = "node_modules/onnxruntime-web/dist/"
    files.update(
        {
            f"/ort/{n[len(dist) :]}": n
            for n in install.manifest
            if n.startswith(dist) and n.count("/") == 3
        }
    )
    return files


class WebRunner:
    """One headless Chromium page serving one .onnx model (runner protocol over HTTP)."""

    def __init__(self, browser: str, install: JsInstall, model: bytes, threads: int) -> None:
        self.label = "browser runner"
        self.state = _State(install, served_files(install), model)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state))
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.profile = Path(tempfile.mkdtemp(prefix="torchparity-chromium-"))
        self._log = open(self.profile.parent / f"{self.profile.name}.log", "wb")
        port = self.server.server_address[1]
        self.proc = subprocess.Popen(
            [
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-renderer-backgrounding",
                "--disable-background-timer-throttling",
                f"--user-data-dir={self.profile}",
                f"http://127.0.0.1:{port}/index.html?threads={threads}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        try:
            self.info: dict[str, Any] = self._answer("load", LOAD_TIMEOUT_S)
        except Exception:
            self.close()
            raise

    def _log_tail(self) -> str:
        try:
            text = Path(self._log.name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [x.strip() for x in text.splitlines() if x.strip()]
        return lines[-1][:300] if lines else ""

    def _answer(self, stage: str, timeout: float) -> dict[str, Any]:
        try:
            status, body = self.state.answers.get(timeout=timeout)
        except queue.Empty:
            dead = self.proc.poll()
            how = (
                f"exited with code {dead}"
                if dead is not None
                else f"gave no answer in {timeout:.0f} s"
            )
            tail = self._log_tail()
            raise NativeRunnerCrash(
                f"{self.label} {how} during {stage}" + (f"; log: {tail}" if tail else "")
            ) from None
        text = body.decode("utf-8", errors="replace")
        if status == "error":
            raise NativeRunnerError(text)
        return json.loads(text) if text else {}

    def _put_inputs(self, inputs: Sequence[Any]) -> None:
        if not all(isinstance(x, torch.Tensor) for x in inputs):
            raise TypeError(f"the {self.label} takes tensor inputs only")
        self.state.inputs = tensor_io.encode(list(inputs))

    def call(self, inputs: Sequence[torch.Tensor]) -> tuple[list[str], list[torch.Tensor]]:
        self._put_inputs(inputs)
        self.state.commands.put("run")
        self._answer("run", LOAD_TIMEOUT_S)
        return tensor_io.decode(self.state.outputs)

    def measure(self, inputs: Sequence[torch.Tensor], config: TimingConfig) -> Measurement:
        self._put_inputs(inputs)
        self.state.commands.put(time_command(config))
        timeout = config.max_time + config.max_warmup_time + LOAD_TIMEOUT_S
        return measurement(self._answer("timing", timeout))

    def close(self) -> None:
        self.state.commands.put("quit")
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.server.shutdown()
        self.server.server_close()
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        Path(self._log.name).unlink(missing_ok=True)
