import io
import os
import sys

import pytest

from tests.helpers import start_cli
from torchparity.axes.matrix import Cell
from torchparity.run.runner import terminal_progress


def test_progress_line_shows_count_eta_and_current_cell():
    stream = io.StringIO()
    show = terminal_progress(stream)
    cell = Cell("mlp", "model", "models", "cpu", "fp16", "eager")
    show(0, 4, cell, 0.0)
    show(2, 4, cell, 10.0)
    show(4, 4, cell, 20.0)
    text = stream.getvalue()
    assert "0/4" in text and "mlp|cpu|fp16|eager" in text
    assert "2/4" in text and "eta   10s" in text  # 10 s for 2 cells -> 10 s left
    assert text.endswith("done" + " " * 56 + "\n")


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_progress_bar_on_a_terminal_and_not_elsewhere(tiny_cases, tmp_path, cli):
    import pty

    args = [
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--no-isolate",
        "--min-time",
        "0.01",
    ]
    leader, follower = pty.openpty()
    proc = start_cli(*args, "--out", str(tmp_path / "tty"), stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(120)
    os.close(leader)
    on_tty = b"".join(chunks).decode("utf-8", "replace")
    # progress counts tasks: 2 cells (2 groups) x 3 timing rounds
    assert "6/6" in on_tty and "eta" in on_tty
    piped = cli(*args, "--out", str(tmp_path / "pipe"))
    assert piped.returncode == 0 and "eta" not in piped.stderr
