"""The README's Python blocks run as written: in order, in one namespace, in a fresh folder.

A block preceded by the line ``<!-- readme-test: skip ... -->`` is not run (e.g. the lines of
a model file shown out of context).
"""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"(<!-- readme-test: skip[^>]*-->\n)?```python\n(.*?)```", re.DOTALL)


def readme_blocks() -> list[str]:
    """The ``python`` blocks of the README that are meant to run."""
    return [code for skip, code in _BLOCK.findall(README.read_text()) if not skip]


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the blocks write files (posterior.nc)
    blocks = readme_blocks()
    assert len(blocks) >= 2
    namespace = {"__name__": "readme"}
    for index, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    assert namespace["x_mean"].shape == (28, 28, 1)
    assert (tmp_path / "posterior.nc").is_file()
    assert namespace["x_hat"].shape == (2, 28, 28, 1)
