"""``--shard auto``: the shard index and count from the batch scheduler that
started this process, so one job definition fans a matrix out over a Slurm
array or a Kubernetes Indexed Job. The result is the 1-based ``(i, n)`` of
``--shard i/n`` (see matrix.shard)."""

from __future__ import annotations

from collections.abc import Mapping

# Where a count comes from when the scheduler does not export one (Kubernetes).
COUNT_VARIABLE = "TORCHPARITY_SHARD_COUNT"
SLURM_VARIABLES = (
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
)
K8S_VARIABLES = ("JOB_COMPLETION_INDEX", COUNT_VARIABLE)


class SchedulerEnvError(ValueError):
    """``--shard auto`` found no usable scheduler variables (the message names them)."""


def _int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SchedulerEnvError(f"{name}={text!r} is not an integer") from None


def _slurm(env: Mapping[str, str]) -> tuple[int, int, str]:
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    low, high = _int(env, "SLURM_ARRAY_TASK_MIN"), _int(env, "SLURM_ARRAY_TASK_MAX")
    step = _int(env, "SLURM_ARRAY_TASK_STEP") or 1
    count = _int(env, "SLURM_ARRAY_TASK_COUNT")
    if task is None:
        raise AssertionError("caller checks SLURM_ARRAY_TASK_ID")
    if low is None:
        if count is None:
            raise SchedulerEnvError(
                "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT "
                "nor SLURM_ARRAY_TASK_MIN/MAX is"
            )
        low = 0  # arrays numbered from 0, the usual --array=0-(n-1)
    if count is None:
        if high is None:
            raise SchedulerEnvError("SLURM_ARRAY_TASK_MIN is set but SLURM_ARRAY_TASK_MAX is not")
        count = (high - low) // step + 1
    offset, rest = divmod(task - low, step)
    if rest or not 0 <= offset < count:
        # e.g. --array=1,4,9: ids that are no evenly spaced range cannot be numbered 1..n
        raise SchedulerEnvError(
            f"SLURM_ARRAY_TASK_ID={task} is not one of {count} evenly spaced ids from {low} "
            f"(step {step}); use a plain range such as --array=0-{count - 1}"
        )
    return offset + 1, count, f"Slurm array task {task} of {low}..{low + (count - 1) * step}"


def _kubernetes(env: Mapping[str, str], count: int | None) -> tuple[int, int, str]:
    index = _int(env, "JOB_COMPLETION_INDEX")
    assert index is not None
    count = count if count is not None else _int(env, COUNT_VARIABLE)
    if count is None:
        raise SchedulerEnvError(
            f"JOB_COMPLETION_INDEX is set but the shard count is not: pass --shard auto:N "
            f"(N = the Job's completions) or set {COUNT_VARIABLE}"
        )
    if not 0 <= index < count:
        raise SchedulerEnvError(f"JOB_COMPLETION_INDEX={index} is outside 0..{count - 1}")
    return index + 1, count, f"Kubernetes Indexed Job completion index {index} of {count}"


def parse_auto(text: str) -> int | None:
    """``"auto"`` -> None, ``"auto:N"`` -> N (the count); ValueError otherwise."""
    if text == "auto":
        return None
    head, sep, tail = text.partition(":")
    if head == "auto" and sep and tail.isdigit() and int(tail) >= 1:
        return int(tail)
    raise SchedulerEnvError(f"malformed shard {text!r}; expected i/n, auto or auto:N")


def shard_from_env(text: str, env: Mapping[str, str]) -> tuple[int, int, str]:
    """``(i, n, where)`` for ``--shard auto`` / ``auto:N`` from the scheduler's
    variables in ``env``: Slurm job arrays first, then Kubernetes Indexed Jobs.
    ``SchedulerEnvError`` names every variable looked for when none is usable."""
    count = parse_auto(text)
    if _int(env, "SLURM_ARRAY_TASK_ID") is not None:
        index, total, where = _slurm(env)
        if count is not None and count != total:
            raise SchedulerEnvError(f"--shard {text} but the Slurm array has {total} tasks")
        return index, total, where
    if _int(env, "JOB_COMPLETION_INDEX") is not None:
        return _kubernetes(env, count)
    looked = ", ".join(SLURM_VARIABLES + K8S_VARIABLES)
    raise SchedulerEnvError(
        f"--shard {text}: no scheduler shard variables set (looked for {looked}); "
        "outside a Slurm array or Kubernetes Indexed Job pass --shard i/n"
    )
