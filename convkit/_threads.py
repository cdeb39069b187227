"""The one place where a kernel's thread count is decided.

The default is OpenMP's team size (``omp_get_max_threads``: OMP_NUM_THREADS and threadpoolctl's limits
apply) capped by the CPUs this process may really use, as loky's ``cpu_count`` computes them: the CPUs in
its affinity mask (``taskset``, ``docker --cpuset-cpus``) and its cgroup's CPU quota rounded up
(``docker --cpus``, Kubernetes limits; cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` /
``cpu.cfs_period_us``).  A container limited to 2 CPUs on a 64-core host gets 2 threads, not 64.  An
explicit ``OMP_NUM_THREADS`` is taken as it is, and :func:`set_num_threads` and ``num_threads=`` win over
everything.  Every kernel gets its thread count from :func:`resolve_num_threads` (``prange`` is always
given ``num_threads``), so the cap holds in every parallel region.
"""
import functools
import math
import os

from ._kernels import threads as _omp
from ._validation import int_arg

_default = None

#: Largest explicit thread count: far above any CPU's core count, far below the process's thread limit
#: (a team of 100,000 threads crashes libgomp when thread creation fails).
MAX_THREADS = 1024

#: Where the cgroup CPU quota is read (tests point these at fake files).
CGROUP_V2_CPU_MAX = "/sys/fs/cgroup/cpu.max"
CGROUP_V1_QUOTA = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"
CGROUP_V1_PERIOD = "/sys/fs/cgroup/cpu/cpu.cfs_period_us"


def set_num_threads(n):
    """Threads for every later call that passes ``num_threads=None``; ``None`` restores the default."""
    global _default
    _default = None if n is None else _thread_count(n, "n")


def get_num_threads():
    """Threads a call with ``num_threads=None`` uses now: :func:`set_num_threads`'s value, else OpenMP's
    default (OMP_NUM_THREADS and threadpoolctl apply), capped by :func:`available_cpus` unless
    OMP_NUM_THREADS is set."""
    if _default is not None:
        return _default
    team = _omp.max_threads()
    if _omp.omp_num_threads_set():
        return team
    return min(team, available_cpus())


@functools.lru_cache(maxsize=1)
def available_cpus():
    """CPUs this process may use: min(os.cpu_count(), CPUs in the affinity mask, cgroup CPU quota rounded
    up), as ``loky.cpu_count(only_physical_cores=False)``; read once (``available_cpus.cache_clear()``
    reads again)."""
    count = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        count = min(count, len(os.sched_getaffinity(0)))
    quota = cgroup_cpu_quota()
    return max(1, min(count, quota)) if quota is not None else max(1, count)


def cgroup_cpu_quota():
    """The cgroup CPU quota rounded up (e.g. 2 for ``docker --cpus=1.5``), or None when unlimited/absent."""
    try:
        if os.path.exists(CGROUP_V2_CPU_MAX):
            with open(CGROUP_V2_CPU_MAX) as f:
                quota, period = f.read().split()[:2]
        elif os.path.exists(CGROUP_V1_QUOTA) and os.path.exists(CGROUP_V1_PERIOD):
            with open(CGROUP_V1_QUOTA) as f:
                quota = f.read().strip()
            with open(CGROUP_V1_PERIOD) as f:
                period = f.read().strip()
        else:
            return None
        if quota == "max" or int(quota) <= 0 or int(period) <= 0:   # v1 writes -1 for unlimited
            return None
        return math.ceil(int(quota) / int(period))
    except (OSError, ValueError):
        return None


def resolve_num_threads(num_threads):
    """``num_threads`` argument -> positive int for the kernels."""
    if num_threads is None:
        return get_num_threads()
    return _thread_count(num_threads, "num_threads")


def _thread_count(value, name):
    n = int_arg(value, name, 1)
    if n > MAX_THREADS:
        raise ValueError(f"expected {name} to be an int from 1 to {MAX_THREADS}, got {value!r}")
    return n
