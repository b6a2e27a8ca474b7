"""A backend option (``--backend-option BACKEND.KEY=VALUE``): its help, its
type and its allowed values, so a value the backend would misread
(``freeze=maybe`` silently off, ``opset=abc`` an error in every cell) is refused
before any cell runs. Values stay text in ``ctx.options``; only the check is typed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def truthy(value: object) -> bool:
    """An option value as a bool (``--backend-option B.freeze=true``)."""
    return str(value).strip().lower() in TRUE_WORDS


@dataclass(frozen=True)
class BackendOption:
    """``kind``: "bool" (true/false, 1/0, yes/no, on/off), "int" (a whole number,
    at least ``minimum``), "choice" (one of ``choices``; a callable is asked only
    when a value is checked, for lists a heavy library knows) or "text" (any)."""

    help: str
    kind: str = "text"
    choices: Sequence[str] | Callable[[], Sequence[str]] = ()
    minimum: int | None = None

    def valid(self) -> str:
        """The allowed values, in words."""
        if self.kind == "bool":
            return "true or false (1/0, yes/no, on/off)"
        if self.kind == "int":
            return "a whole number" + (f" >= {self.minimum}" if self.minimum is not None else "")
        if self.kind == "choice":
            choices = self.choices() if callable(self.choices) else self.choices
            return ", ".join(choices)
        return "any text"

    def allows(self, value: str) -> bool:
        if self.kind == "bool":
            return value.strip().lower() in TRUE_WORDS + FALSE_WORDS
        if self.kind == "int":
            try:
                number = int(value)
            except ValueError:
                return False
            return self.minimum is None or number >= self.minimum
        if self.kind == "choice":
            choices = self.choices() if callable(self.choices) else self.choices
            return value in choices
        return True


def option_spec(declared: BackendOption | str) -> BackendOption:
    """A declared option; a plain help string (a plugin's ``{"key": "help"}``) is text."""
    return declared if isinstance(declared, BackendOption) else BackendOption(declared)
