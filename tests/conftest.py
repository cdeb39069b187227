import os

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
