"""The benchmark's measuring instruments: interleaved wall-clock timing, latency percentiles,
FLOPs, peak memory, and what the numbers were measured on."""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from segcli.commands import benchmark_stages as stages
from segcli.progress import tracked


def time_interleaved(fns: list[Callable], warmup: int, iters: int, devices) -> list[list[float]]:
    """Wall-clock seconds of `iters` calls of each function, taking turns, after `warmup`
    untimed calls of each; CUDA devices are synchronised around every call."""
    for fn in fns:
        for _ in tracked(range(warmup), "warm-up"):
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in tracked(range(iters), "timed calls"):
        for fn, spent in zip(fns, times):
            _sync_all(devices)
            start = time.perf_counter()
            fn()
            _sync_all(devices)
            spent.append(time.perf_counter() - start)
    return times


def _sync_all(devices) -> None:
    for device in devices:
        stages.sync(device)


def speed(times: list[float], batch_size: int) -> dict:
    p50, p90, p99 = np.percentile(np.asarray(times) * 1e3, [50, 90, 99])
    return {
        "fps": batch_size * len(times) / sum(times),
        "latency_ms_p50": float(p50),
        "latency_ms_p90": float(p90),
        "latency_ms_p99": float(p99),
        "iters": len(times),
    }


def count_gflops(fn: Callable[[], object]) -> tuple[float, object]:
    """(GFLOPs, outputs) of one call: its floating-point operations in billions
    (torch.utils.flop_counter: 2 per multiply-add) and what it returned."""
    with FlopCounterMode(display=False) as counter:
        outputs = fn()
    return counter.get_total_flops() / 1e9, outputs


def process_peak_rss_mb() -> float:
    """The process's peak resident set in MiB (the CPU's peak memory; on CUDA,
    Subject.peak_memory reads torch's allocator instead). On Linux that is VmHWM of
    /proc/self/status: getrusage's ru_maxrss survives fork and exec, so a benchmark started by
    a large parent process would report the parent's peak."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({_cpu_name()}, {torch.get_num_threads()} threads)"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def versions() -> dict:
    import torchvision

    from segcli import __version__

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "segcli": __version__,
    }
