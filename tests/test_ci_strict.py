"""With CI=true, a PyTorch/torchvision cross-check that skips for want of the peer fails (tests/conftest.py)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PEER_TESTS = '''
import sys
import pytest

def test_needs_torchvision():
    sys.modules["torchvision"] = None          # as if it were not installed
    pytest.importorskip("torchvision")

def test_skips_for_another_reason():
    pytest.skip("torchvision pads symmetrically")
'''


@pytest.mark.parametrize("ci, status, words", [("true", 1, "CI=true: "), ("", 0, "2 skipped")])
def test_missing_peer_fails_only_under_ci(tmp_path, ci, status, words):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_peer.py").write_text(PEER_TESTS)
    env = {**os.environ, "CI": ci}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_peer.py"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert run.returncode == status, run.stdout + run.stderr
    assert words in run.stdout
    if ci:
        assert "1 failed, 1 skipped" in run.stdout
