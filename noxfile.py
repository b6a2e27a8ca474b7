"""nox sessions: tests, bench, lint (and more as the project grows).

Every session installs the project from its own files. CI and test
environments pin torch through constraints/ci.txt (a CPU build, fast to
install); the package's own dependency ranges stay open for users.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "venv"

ROOT = Path(__file__).parent
CONSTRAINTS = str(ROOT / "constraints" / "ci.txt")


def install(session: nox.Session, extras: str = "") -> None:
    target = f".[{extras}]" if extras else "."
    session.install("-e", target, "-c", CONSTRAINTS)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (fast by default; `-- -m slow` for the deep tests)."""
    install(session, "dev")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def bench(session: nox.Session) -> None:
    """Run the default benchmark matrix into reports/<run-id>/ (args after -- go to `torchparity run`)."""
    install(session)
    session.run("torchparity", "run", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
