"""The `reason` of an error row: the first meaningful line, through wrappers."""

from torchparity._core.errors import first_line


def _chained(outer: Exception, inner: Exception) -> Exception:
    try:
        try:
            raise inner
        except Exception as exc:
            raise outer from exc
    except Exception as exc:  # noqa: BLE001 - the test returns whatever was raised
        return exc


def test_plain_exception_gives_its_first_non_blank_line():
    assert first_line(RuntimeError("\n\n  first\nsecond")) == "RuntimeError: first"
    assert first_line(ValueError()) == "ValueError"


def test_wrapper_that_only_introduces_details_gives_way_to_the_root_cause():
    wrapper = RuntimeError(
        "Failed to export. \x1b[96mThis is step 1/3\x1b[0m. Next steps:\n- fix it"
    )
    exc = _chained(wrapper, ValueError("Could not guard on data-dependent expression\nmore"))
    assert first_line(exc) == (
        "ValueError: Could not guard on data-dependent expression (raised as RuntimeError)"
    )


def test_informative_wrapper_keeps_its_line_and_names_the_cause():
    exc = _chained(OSError("Failed to get source for Pair.__init__"), OSError("no source"))
    assert (
        first_line(exc)
        == "OSError: Failed to get source for Pair.__init__ (cause: OSError: no source)"
    )


def test_reason_is_bounded():
    assert len(first_line(RuntimeError("x" * 5000))) <= 400
