"""Every Python code block of README.md runs as written, each in a fresh namespace with its own imports.

Blocks of ``>>>`` lines run as doctests (their printed output is checked); other blocks are executed
once, each in its own interpreter.  A block whose optional peer is not installed (a missing module other than convkit and NumPy) is
skipped, naming the module.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import convkit

README = Path(__file__).resolve().parent.parent / "README.md"
TREE = Path(convkit.__file__).resolve().parent.parent     # where the convkit under test lives
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text):
    """(line number, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks(README.read_text())


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path):
    # A fresh interpreter per block (a block may change convkit's global settings), in a scratch folder
    # (a block may write files), importing the convkit under test.
    doctest_block = code.lstrip().startswith(">>>")
    script = tmp_path / ("block.txt" if doctest_block else "block.py")
    script.write_text(code)
    command = ([sys.executable, "-m", "doctest", "-o", "NORMALIZE_WHITESPACE", "-o", "ELLIPSIS", script.name]
               if doctest_block else [sys.executable, script.name])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TREE), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", run.stderr + run.stdout)
    if run.returncode and missing and missing.group(1).split(".")[0] not in ("convkit", "numpy"):
        pytest.skip(f"README.md:{line} needs {missing.group(1)}, not installed")
    assert run.returncode == 0, f"README.md:{line} failed:\n{run.stdout}{run.stderr}"


def test_block_finder_sees_fences_and_line_numbers():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\n>>> 1 + 1\n2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, ">>> 1 + 1\n2\n")]
