"""Every Python code block of README.md runs as written, each in a fresh namespace with its own imports.

Blocks of ``>>>`` lines run as doctests (their printed output is checked); other blocks are executed
once.  A block whose optional peer is not installed (a missing module other than convkit and NumPy) is
skipped, naming the module.
"""
import doctest
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(text):
    """(line number, code) of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks(README.read_text())


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs(line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)           # a block that writes files writes them here
    name = f"README.md:{line}"
    try:
        if code.lstrip().startswith(">>>"):
            test = doctest.DocTestParser().get_doctest(code, {}, name, str(README), line - 1)
            runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
            runner.run(test, clear_globs=True)
            assert runner.summarize(verbose=False).failed == 0, f"{name}: doctest failed (output above)"
        else:
            exec(compile(code, name, "exec"), {"__name__": "__readme__"})
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] in ("convkit", "numpy"):
            raise
        pytest.skip(f"{name} needs {exc.name}, not installed")


def test_block_finder_sees_fences_and_line_numbers():
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\n>>> 1 + 1\n2\n```\n"
    assert python_blocks(text) == [(3, "x = 1\n"), (10, ">>> 1 + 1\n2\n")]
