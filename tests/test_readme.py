"""The README's Python examples and the public API's docstring examples run as written, on the devnet."""

import doctest
import re
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

import modelreg
from modelreg.devnet import manager
from modelreg.service.connect import Registry

pytestmark = pytest.mark.slow  # a devnet and about ten commits: about 15 s

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def _checkpoint(directory: Path, seed: int) -> None:
    """What a trainer leaves: a model directory with its weights and a config."""
    directory.mkdir(parents=True)
    save_file({"w": np.random.default_rng(seed).standard_normal((4, 4), dtype=np.float32)},
              str(directory / "model.safetensors"))
    (directory / "config.json").write_text('{"hidden": 4}')


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh directory as the current one, with its own data directory ($MODELREG_HOME)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELREG_HOME", str(tmp_path / "home"))
    try:
        yield tmp_path
    finally:
        manager.down(tmp_path / "home")


def test_the_readme_has_python_examples():
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 1


def test_every_python_example_of_the_readme_runs_as_written(workdir):
    _checkpoint(workdir / "out" / "checkpoint-500", 1)
    _checkpoint(workdir / "out" / "checkpoint-1000", 2)
    (workdir / "data").mkdir()
    (workdir / "data" / "train.txt").write_text("to be or not to be")
    for block in python_blocks(README.read_text(encoding="utf-8")):
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - the README's own code
    history = modelreg.connect().history("my-llm")
    assert [v["version"] for v in history] == [1, 2, 3, 4]
    assert [v["parent"]["version"] if v["parent"] else None for v in history] == [None, 1, 2, 3]


def test_the_docstring_examples_of_the_public_api_run(workdir):
    for seed, name in enumerate(("checkpoint-500.safetensors", "checkpoint-1000.safetensors")):
        save_file({"w": np.random.default_rng(seed).standard_normal((4, 4), dtype=np.float32)}, name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    finder = doctest.DocTestFinder(recurse=False)
    # In the order a user meets them: seal, connect, commit version 1, then version 2 with a parent.
    for obj in (modelreg.seal, modelreg.connect, modelreg.commit, Registry.commit):
        for test in finder.find(obj, globs={"modelreg": modelreg}):
            runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 6
