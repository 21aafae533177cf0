"""Thread counts that do not oversubscribe the machine when work runs in several processes."""

from __future__ import annotations

import os
import sys


def cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def share_cores(processes: int) -> int:
    """Give this process its share of the cores: torch's intra-op threads set to cores / processes
    (at least 1), unless OMP_NUM_THREADS says otherwise. Returns the thread count chosen. Touches
    torch only when it is already imported, so a search-only run never loads it."""
    threads = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() \
        else max(1, cores() // max(1, processes))
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threads
