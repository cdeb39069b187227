"""Giving each Dask worker's convkit its share of its machine's cores."""
import collections
import os

import convkit


def machine_cores():
    """Cores this process may run on (its CPU affinity; the whole machine where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def share_cores(client):
    """Set every worker's convkit thread count to its share of its machine: the machine's cores divided
    by the Dask threads of all workers on that machine (at least 1), so that the tasks running at once
    never use more threads than there are cores.  Returns ``{worker address: convkit threads}``.

    Without it each worker's convkit follows OMP_NUM_THREADS, which Dask's nanny sets to 1 in the
    worker processes it starts: safe, but idle cores when a machine has fewer Dask threads than cores.
    Call it again after workers join (it only changes the workers present).
    """
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]   # every worker (the default lists 5)
    except TypeError:  # older distributed, without n_workers: lists every worker
        workers = client.scheduler_info()["workers"]
    cores = client.run(machine_cores)
    threads_on_host = collections.Counter()
    for info in workers.values():
        threads_on_host[info["host"]] += info["nthreads"]
    shares = {address: max(cores[address] // threads_on_host[info["host"]], 1)
              for address, info in workers.items() if address in cores}
    client.run(_set_share, shares)
    return shares


def _set_share(shares, dask_worker):
    if dask_worker.address in shares:   # a worker that joined since the scheduler was asked keeps its own
        convkit.set_num_threads(shares[dask_worker.address])
