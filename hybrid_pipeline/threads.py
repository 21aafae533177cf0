"""Thread counts that do not oversubscribe the machine when work runs in several processes.

torch runs each process's tensor ops on its own pool of threads, one per core by default. When
several processes share the cores (the planner's `--workers`, `torchrun --nproc_per_node`) each
pool still takes every core, and threads that spin-wait for each other on a busy core make small
ops many times slower than one thread would. So every process gets its share: the cores this
process may run on, divided by the processes of the run (at least 1). The share does not follow
the machine's momentary load, so the same command on the same machine always runs on the same
count: float sums can round differently on another count, and a resumed training run should
continue as it began. On a machine that other jobs keep busy, pass fewer: measured on a 2-core
machine under such load (experiments/bench_threads.py), TRM training ran 4-8x slower on 2 threads
than on 1.

What decides, first match wins: a `--threads N` flag; the environment (`OMP_NUM_THREADS`, then
`MKL_NUM_THREADS`), which launchers and batch systems set; the share of the cores. The count is a
matter of speed, so a run records it beside its settings, not among them, and a resume may change it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from hybrid_pipeline.arc.wording import plural

ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # the variables that set a thread count, in order


def cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def local_processes(environ: Mapping[str, str] = os.environ) -> int:
    """Processes of this run on this machine: `LOCAL_WORLD_SIZE` under torchrun / accelerate launch, else 1."""
    value = environ.get("LOCAL_WORLD_SIZE", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


@dataclass(frozen=True)
class ThreadChoice:
    """torch's intra-op thread count for this process, and what chose it."""

    threads: int
    chosen_by: str  # "--threads", an environment variable's name, or "cores"
    cores: int
    processes: int

    def describe(self) -> str:
        """One line for a run's header: `threads: 1 per process (2 cores / 2 processes; ...)`."""
        why = (f"{plural(self.cores, 'core')} / {plural(self.processes, 'process', 'processes')}"
               if self.chosen_by == "cores" else f"set by {self.chosen_by}")
        return f"threads: {self.threads} per process ({why}; --threads N or OMP_NUM_THREADS to change)"

    def to_dict(self) -> dict[str, Any]:
        return {"torch_threads": self.threads, "chosen_by": self.chosen_by, "cores": self.cores,
                "processes": self.processes}


def choose_threads(flag: int | None = None, processes: int = 1,
                   environ: Mapping[str, str] = os.environ) -> ThreadChoice:
    """The thread count for one of `processes` sharing this machine: `flag` (from `--threads`), else
    the first of `ENV_VARS` holding a positive integer, else cores / processes (at least 1)."""
    available, processes = cores(), max(1, processes)
    if flag is not None:
        if flag < 1:
            raise ValueError(f"--threads must be at least 1, got {flag}")
        return ThreadChoice(flag, "--threads", available, processes)
    for name in ENV_VARS:
        value = environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return ThreadChoice(int(value), name, available, processes)
    return ThreadChoice(max(1, available // processes), "cores", available, processes)


_chosen: ThreadChoice | None = None  # what `use_threads` set in this process (forked workers inherit it)


def use_threads(flag: int | None = None, processes: int = 1) -> ThreadChoice:
    """Choose (see `choose_threads`), apply to torch (now, or when it is imported) and remember the
    choice for `chosen` and for processes forked later (`share_cores`)."""
    global _chosen
    _chosen = choose_threads(flag, processes)
    _apply(_chosen.threads)
    return _chosen


def chosen() -> ThreadChoice | None:
    """The choice `use_threads` made in this process (None when nothing chose)."""
    return _chosen


def share_cores(processes: int) -> int:
    """In a worker process: apply the count chosen before the fork when there was one, else this
    process's share of the cores (or the environment's count). Returns the thread count."""
    threads = (_chosen or choose_threads(None, processes)).threads
    _apply(threads)
    return threads


def _apply(threads: int) -> None:
    """Set torch's intra-op threads. Before torch is imported (a search-only run never imports it)
    this sets `OMP_NUM_THREADS`, which torch reads when it is imported, as do child processes."""
    torch = sys.modules.get("torch")
    if torch is None:
        os.environ["OMP_NUM_THREADS"] = str(threads)
    elif torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
