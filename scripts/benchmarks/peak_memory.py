"""Peak memory of the benchmark process; imports neither Lightning nor diary_lightning, so the TRL side of
``benchmark.py`` can use it without loading them into the process it measures."""

from __future__ import annotations

import resource


def peak_memory_bytes() -> int:
    """Peak memory of this process so far: allocated GPU memory under CUDA, else the peak resident set size."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
