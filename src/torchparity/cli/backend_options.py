"""``--backend-option BACKEND.KEY=VALUE``: parsed and checked against the
registered backends, the keys each one declares and each key's allowed values,
before any cell runs."""

from __future__ import annotations

from collections.abc import Sequence

from torchparity.backends import backend_names, get_backend
from torchparity.backends.options import option_spec
from torchparity.cli.common import UsageError, choose, warn


def _check(backend: str, key: str, value: str) -> None:
    """One clear line when ``backend`` does not declare ``key`` or refuses ``value``."""
    known = get_backend(backend).options
    if known is None:  # a plugin that declares no options takes any key and value
        return
    if key not in known:
        raise UsageError(
            f"unknown option {key!r} for backend {backend!r}; valid: {', '.join(known) or 'none'}"
        )
    spec = option_spec(known[key])
    if not spec.allows(value):
        raise UsageError(
            f"--backend-option {backend}.{key}={value!r} is not allowed; valid: {spec.valid()}"
        )


def parse_backend_options(texts: Sequence[str]) -> dict[str, dict[str, str]]:
    """``["onnxruntime.opset=18", ...]`` -> ``{"onnxruntime": {"opset": "18"}}``,
    each checked (``UsageError``)."""
    options: dict[str, dict[str, str]] = {}
    for text in texts:
        target, sep, value = text.partition("=")
        backend, dot, key = target.rpartition(".")
        if not sep or not dot or not backend or not key:
            raise UsageError(f"malformed --backend-option {text!r}; expected BACKEND.KEY=VALUE")
        choose([backend], backend_names(), "backend")
        _check(backend, key, value.strip())
        earlier = options.get(backend, {}).get(key)
        if earlier is not None and earlier != value.strip():
            raise UsageError(
                f"--backend-option {backend}.{key} given twice ({earlier!r} and "
                f"{value.strip()!r}); it takes one value"
            )
        options.setdefault(backend, {})[key] = value.strip()
    return options


def warn_unselected(options: dict[str, dict[str, str]], backends: Sequence[str]) -> None:
    """An option for a backend the run does not select changes nothing: say so."""
    for backend, keys in options.items():
        if backend not in backends:
            given = ", ".join(f"{backend}.{k}" for k in keys)
            warn(
                f"--backend-option {given}: backend {backend!r} is not selected "
                f"(--backend {','.join(backends)}); the option has no effect"
            )
