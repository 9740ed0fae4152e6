"""How many torch threads a training process uses: one rule for ``train`` and for ``reproduce``'s sweeps.

On a CPU a step of the paper's networks (M = 100) gains little from a second thread, while threads that
outnumber the free cores cost a great deal: libgomp's threads busy-wait for each other, so a run beside another
job on 2 cores was measured 30 times slower per step with 2 torch threads than with 1.  So the default shares the
cores that are free among the jobs that start together::

    threads = max(1, (cores - busy) // jobs)

``cores`` is ``OMP_NUM_THREADS`` where it is set (the environment's own choice, e.g. a CI job; then ``busy`` is
0), else the cores this process may run on; ``busy`` is the 1-minute load average, rounded: the cores other
jobs keep busy.  ``jobs`` is the number of runs started side by side: ``reproduce --jobs N``, or the processes
``torchrun`` starts on this machine (``LOCAL_WORLD_SIZE``); 1 for a lone ``train``.  ``--threads N`` overrides it.
On a GPU the CPU threads only feed the device, and the same rule applies.

The thread count changes the order in which torch sums, hence the last bits of a run: a resumed run equals an
unbroken one bit for bit at the same thread count (``config.json`` records the count used).
"""

import os
from typing import Optional

import torch

from .errors import AevbInputError


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _environment_threads() -> Optional[int]:
    try:
        value = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return value if value >= 1 else None


def busy_cores() -> int:
    """The cores other jobs keep busy: the 1-minute load average, rounded (0 where the OS has none)."""
    try:
        return int(os.getloadavg()[0] + 0.5)
    except (AttributeError, OSError):
        return 0


def default_threads(jobs: int = 1) -> int:
    """``max(1, (cores - busy) // jobs)`` torch threads for each of ``jobs`` runs started together (see above)."""
    environment = _environment_threads()
    free = environment if environment is not None else usable_cores() - min(busy_cores(), usable_cores())
    return max(1, free // max(1, int(jobs)))


def local_jobs() -> int:
    """The training processes started together on this machine: ``torchrun``'s ``LOCAL_WORLD_SIZE``, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def set_threads(threads: Optional[int], jobs: int = 1) -> int:
    """Set torch's thread count to ``threads`` (``None``: :func:`default_threads` for ``jobs``); returns it."""
    if threads is None:
        threads = default_threads(jobs)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise AevbInputError(f"the number of threads must be an integer >= 1, got {threads!r}")
    torch.set_num_threads(threads)
    return threads
