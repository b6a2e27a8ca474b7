"""DataLoader throughput (``torchparity data``): a synthetic CIFAR-10-shaped
dataset (deterministic uint8 images and labels, augmentation in plain torch)
loaded across ``num_workers``, ``pin_memory``, ``persistent_workers`` and the
multiprocessing start methods this OS has. Each configuration is one row
(kind ``data``): samples/s over the epochs, time to the first batch, and the
peak resident memory of this process plus its worker processes.

The dataset class lives in this module so spawn and forkserver workers
import it; nothing else crosses into the workers.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any

import psutil
import torch
from torch.utils.data import DataLoader, Dataset

from torchparity._core.status import Status

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class SyntheticCifar10(Dataset):
    """``size`` 3x32x32 uint8 images and labels in 0..9, the same bits on every
    platform (torch's CPU generator seeded per index), with CIFAR-style
    augmentation: pad-4 random crop, horizontal flip, normalisation."""

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size, self.seed = size, seed
        self.mean = torch.tensor(CIFAR_MEAN).view(3, 1, 1)
        self.std = torch.tensor(CIFAR_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8, generator=gen)
        label = int(torch.randint(0, 10, (1,), generator=gen))
        x = torch.nn.functional.pad(image.float() / 255.0, (4, 4, 4, 4))
        top, left = (int(v) for v in torch.randint(0, 9, (2,), generator=gen))
        x = x[:, top : top + 32, left : left + 32]
        if bool(torch.randint(0, 2, (1,), generator=gen)):
            x = x.flip(-1)
        return (x - self.mean) / self.std, label


@dataclass(frozen=True)
class LoaderConfig:
    num_workers: int
    pin_memory: bool = False
    persistent_workers: bool = False
    start_method: str = ""  # "" with num_workers=0

    @property
    def label(self) -> str:
        parts = [f"workers={self.num_workers}"]
        if self.num_workers:
            parts.append(self.start_method)
            parts.append("persistent" if self.persistent_workers else "transient")
        if self.pin_memory:
            parts.append("pinned")
        return " ".join(parts)


def default_start_method() -> str:
    """The start method DataLoader workers get by default on this OS."""
    return mp.get_context().get_start_method()


def default_grid(workers: list[int], methods: list[str] | None = None) -> list[LoaderConfig]:
    """Each start method (default: the OS's default one; spawn workers import
    torch, seconds each) x persistent for each worker count > 0, plus
    pin_memory once (the largest worker count, the first method)."""
    methods = methods or [default_start_method()]
    grid = []
    for n in workers:
        if n == 0:
            grid.append(LoaderConfig(0))
            continue
        grid += [
            LoaderConfig(n, False, persistent, m) for m in methods for persistent in (False, True)
        ]
    if workers:
        top = max(workers)
        grid.append(LoaderConfig(top, True, False, methods[0] if top else ""))
    return grid


class _PeakRss:
    """Peak of this process's RSS plus its children's, sampled every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total(self) -> int:
        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:  # a worker that just exited
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._total())
            self._stop.wait(0.005)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure_loader(
    config: LoaderConfig, samples: int, batch: int, epochs: int, seed: int = 0
) -> dict[str, Any]:
    """One configuration: samples/s over ``epochs`` epochs, time to the first
    batch (loader creation included: worker start-up), peak memory."""
    dataset = SyntheticCifar10(samples, seed)
    kwargs: dict[str, Any] = {
        "batch_size": batch,
        "shuffle": False,
        "num_workers": config.num_workers,
        "pin_memory": config.pin_memory,
    }
    if config.num_workers:
        kwargs.update(
            persistent_workers=config.persistent_workers,
            multiprocessing_context=mp.get_context(config.start_method),
        )
    seen, first = 0, None
    checksum = 0.0
    with _PeakRss() as rss, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pin_memory.*")  # said in the row instead
        began = time.perf_counter()
        loader = DataLoader(dataset, **kwargs)
        for _ in range(epochs):
            for images, labels in loader:
                if first is None:
                    first = time.perf_counter() - began
                seen += int(labels.shape[0])
                checksum += float(images[:, 0, 0, 0].sum())
        elapsed = time.perf_counter() - began
        del loader
    pin_effective = config.pin_memory and torch.cuda.is_available()
    return {
        "samples": seen,
        "samples_s": seen / elapsed,
        "throughput_items_s": seen / elapsed,
        "first_batch_s": first,
        "elapsed_s": elapsed,
        "peak_rss_mb": rss.peak / 2**20,
        "epochs": epochs,
        "data_checksum": round(checksum, 3),
        "pin_memory_effective": pin_effective,
    }


def cell_id(config: LoaderConfig, samples: int, batch: int, epochs: int) -> str:
    return f"data|{config.label}|{samples}x{batch}x{epochs}"


def data_row(config: LoaderConfig, samples: int, batch: int, epochs: int) -> dict[str, Any]:
    """The row of one configuration (status ``error`` with the reason when the
    loader fails, e.g. a start method this Python cannot use)."""
    row: dict[str, Any] = {
        "case": f"cifar10_synthetic {config.label}",
        "kind": "data",
        "suite": "data",
        "device": "cpu",
        "precision": "fp32",
        "backend": "dataloader",
        "mode": "data",
        "status": Status.PASS.value,
        "reason": "",
        "batch": batch,
        "num_workers": config.num_workers,
        "pin_memory": config.pin_memory,
        "persistent_workers": config.persistent_workers,
        "start_method": config.start_method or "main",
    }
    try:
        row.update(measure_loader(config, samples, batch, epochs))
        if config.pin_memory and not row["pin_memory_effective"]:
            row["reason"] = "pin_memory has no effect without an accelerator"
    except Exception as exc:  # noqa: BLE001 - a configuration's failure is a finding
        row.update(status=Status.ERROR.value, reason=f"{type(exc).__name__}: {exc}"[:400])
    row["cell_id"] = cell_id(config, samples, batch, epochs)
    return row
