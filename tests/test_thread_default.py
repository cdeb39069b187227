"""The default thread count respects the affinity mask and the cgroup CPU quota (as loky's cpu_count);
OMP_NUM_THREADS, set_num_threads and num_threads= still win."""
import os
import subprocess
import sys

import pytest

import convkit
from convkit import _threads


@pytest.fixture
def fake_cgroup(tmp_path, monkeypatch):
    """Point the cgroup paths at files under tmp_path; returns a writer."""
    paths = {"v2": tmp_path / "cpu.max", "quota": tmp_path / "cpu.cfs_quota_us",
             "period": tmp_path / "cpu.cfs_period_us"}
    monkeypatch.setattr(_threads, "CGROUP_V2_CPU_MAX", str(paths["v2"]))
    monkeypatch.setattr(_threads, "CGROUP_V1_QUOTA", str(paths["quota"]))
    monkeypatch.setattr(_threads, "CGROUP_V1_PERIOD", str(paths["period"]))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    _threads.available_cpus.cache_clear()

    def write(**files):
        for name, text in files.items():
            paths[name].write_text(text)
        _threads.available_cpus.cache_clear()
    yield write
    _threads.available_cpus.cache_clear()


@pytest.mark.parametrize("files, quota", [
    (dict(v2="150000 100000\n"), 2),          # docker --cpus=1.5: rounded up
    (dict(v2="100000 100000\n"), 1),
    (dict(v2="max 100000\n"), None),
    (dict(quota="50000\n", period="100000\n"), 1),
    (dict(quota="250000\n", period="100000\n"), 3),
    (dict(quota="-1\n", period="100000\n"), None),
    (dict(), None),
    (dict(v2="garbage\n"), None),
])
def test_cgroup_quota(fake_cgroup, files, quota):
    fake_cgroup(**files)
    assert _threads.cgroup_cpu_quota() == quota


def test_a_quota_caps_the_default(fake_cgroup):
    fake_cgroup(v2="100000 100000\n")
    assert _threads.available_cpus() == 1
    assert convkit.get_num_threads() == 1
    convkit.set_num_threads(3)
    try:
        assert convkit.get_num_threads() == 3            # set_num_threads wins
    finally:
        convkit.set_num_threads(None)
    assert _threads.resolve_num_threads(2) == 2          # and so does num_threads=


def test_omp_num_threads_wins_over_the_cap(fake_cgroup, monkeypatch):
    fake_cgroup(v2="100000 100000\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert convkit.get_num_threads() == _threads._omp.max_threads()


def test_a_blank_omp_num_threads_counts_as_unset(fake_cgroup, monkeypatch):
    fake_cgroup(v2="100000 100000\n")
    monkeypatch.setenv("OMP_NUM_THREADS", " \t")
    assert convkit.get_num_threads() == 1                # capped, as with no OMP_NUM_THREADS


def _child(code, **env):
    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(convkit.__file__)))
    return out.stdout.split()


AFFINITY = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); import convkit; "
            "print(convkit.get_num_threads(), convkit.conv2d(__import__('numpy').ones((1, 4, 4, 1)), "
            "__import__('numpy').ones((1, 1, 1, 1))).sum())")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2
                    or _threads._omp.max_threads() < 2, reason="needs 2 usable CPUs and OpenMP")
def test_affinity_mask_caps_the_default_in_a_child_process():
    assert _child(AFFINITY) == ["1", "16.0"]
    assert _child(AFFINITY, OMP_NUM_THREADS="2") == ["2", "16.0"]     # the user's setting wins
