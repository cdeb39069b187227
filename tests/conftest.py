import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Hypothesis profiles (tests/test_fuzz.py): "ci" (default) runs few examples, derandomised so a CI run is
# reproducible; "sanitize" (scripts/sanitize.sh) four times as many; CONVKIT_FUZZ=long many random ones.
# No example database in the source tree.
settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("sanitize", settings.get_profile("ci"), max_examples=100)
settings.register_profile("long", max_examples=2000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("CONVKIT_FUZZ", "ci"))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# CI=true (the main test run of .ci/run): a PyTorch or torchvision cross-check that skips because the peer
# cannot be imported fails instead, so CI cannot go green without running them.  scripts/sanitize.sh's
# venv has no torch: .ci/run runs it without CI.
PEER_MISSING = re.compile(r"could not import '(torch|torchvision)'|needs (torch|torchvision)\b")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and PEER_MISSING.search(str(report.longrepr)):
        report.outcome = "failed"
        report.longrepr = (f"CI=true: {item.nodeid} skipped ({report.longrepr[-1]}): the PyTorch/torchvision "
                           "cross-checks must run in CI (pip install torch==2.14.1 torchvision==0.29.1)")
