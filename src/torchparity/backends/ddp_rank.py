"""One DDP rank (``python -m torchparity.backends.ddp_rank JOB_JSON RANK``),
started by backends/ddp.py: joins the process group, trains its half of
every batch through DistributedDataParallel, writes its results as tensors."""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


def _dist_backend(device: str) -> str:
    if device == "cuda" and torch.cuda.device_count() >= 2 and dist.is_nccl_available():
        return "nccl"
    return "gloo"  # CPU tensors, or CUDA tensors on one GPU shared by both ranks


def main(job_path: str, rank_text: str) -> int:
    began = time.perf_counter()
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    rank, world = int(rank_text), int(job["world_size"])
    torch.set_num_threads(1)  # two ranks share the machine
    from torchparity.axes.devices import get_device
    from torchparity.axes.precision import get_precision
    from torchparity.cases.case import CASES, load_all
    from torchparity.train_loop import Trainer, trainable_module

    load_all([tuple(p) for p in job["plugins"]])  # type: ignore[misc]
    case, precision, device = (
        CASES[job["case"]],
        get_precision(job["precision"]),
        get_device(job["device"]),
    )
    backend = _dist_backend(device.name)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{job['port']}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=300),
    )
    try:
        tdev = device.torch_device()
        if tdev.type == "cuda":
            tdev = torch.device("cuda", rank % torch.cuda.device_count())
            torch.cuda.set_device(tdev)
        module = trainable_module(case, int(job["seed"])).to(device=tdev, dtype=precision.dtype)
        ddp = DistributedDataParallel(
            module, device_ids=[tdev.index] if tdev.type == "cuda" else None
        )
        from torchparity.backends import get_backend
        from torchparity.backends.ddp import DDPBackend

        ddp_backend = get_backend(job.get("backend", "ddp"))
        if not isinstance(ddp_backend, DDPBackend):  # backends/ddp.py starts ranks for its own
            raise TypeError(f"backend {ddp_backend.name!r} is not a DDP backend")
        ddp_backend.configure_ddp(ddp, rank)
        half = case.batch // world
        trainer = Trainer(
            case,
            module,
            ddp,
            precision,
            device,
            int(job["seed"]),
            job["optimizer"],
            part=slice(rank * half, (rank + 1) * half),
        )
        startup = time.perf_counter() - began
        trace = trainer.run(int(job["steps"]))
        losses = torch.tensor(trace.losses, dtype=torch.float64)
        dist.all_reduce(losses)  # each rank's loss is its half's mean: their mean is the batch's
        timed = int(job["timed_steps"])
        sync_s = trainer.time_steps(0.0, int(job["steps"]), at_least=timed, at_most=timed)
        with ddp.no_sync():
            no_sync_s = trainer.time_steps(0.0, int(job["steps"]), at_least=timed, at_most=timed)
        result = {
            "names": trace.names,
            "losses": (losses / world).tolist(),
            "grads": trace.grads,
            "params0": trace.params0,
            "params": trace.params,
            "step_s": trace.step_s,
            "sync_s": sync_s,
            "no_sync_s": no_sync_s,
            "startup_s": startup,
            "dist_backend": backend,
            "batchnorm": any(
                isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()
            ),
            "columns": trace.columns,
        }
        # The parameters compared are those after the compared steps, not after timing.
        torch.save(
            {
                k: ([t.cpu() for t in v] if k in ("grads", "params0", "params") else v)
                for k, v in result.items()
            },
            Path(job["out"]) / f"rank{rank}.pt",
        )
        # The no_sync steps end with no collective: without this, one rank can tear the
        # group down while the other still runs, and gloo aborts that one at exit
        # ("terminate called without an active exception", seen once in CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
