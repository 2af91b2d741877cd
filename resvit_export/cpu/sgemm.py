"""This CPU's fp32 matrix-multiply rate, the yardstick for "how close to the hardware is a graph".

A graph whose work is ``F`` FLOPs of matmuls cannot run faster than ``F / rate`` on this CPU (its sgemm-bound
time). The rate is measured, not read off a datasheet: large square ``torch.mm`` products (PyTorch's CPU BLAS,
the same kind of kernel ORT's MLAS and eager use) at the thread count the benchmarks use, best of several runs.
"""

from __future__ import annotations

import time

__all__ = ["sgemm_gflops"]


def sgemm_gflops(threads: int = 2, n: int = 2048, repeats: int = 5) -> float:
    """Best measured GFLOP/s (2 FLOPs per multiply-accumulate) of an n×n×n fp32 product on ``threads`` threads."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
        out = torch.empty(n, n)
        torch.mm(a, b, out=out)  # warm-up: thread pool and packing buffers
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - t)
    finally:
        torch.set_num_threads(saved)
    return 2 * n**3 / best / 1e9
