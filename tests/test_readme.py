"""The Python examples of README.md run as written."""

import os
import re

import pytest

from tests import runs

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python_blocks() -> list[str]:
  with open(os.path.join(REPOSITORY, "README.md"), encoding="utf-8") as handle:
    return re.findall(r"```python\n(.*?)```", handle.read(), flags=re.DOTALL)


def test_readme_has_two_python_examples():
  assert len(_python_blocks()) == 2


@pytest.mark.parametrize("index", [0, 1])
def test_readme_python_example_runs(index, tmp_path, monkeypatch, capsys):
  from crossdomain import train

  if index == 0:  # it reads the run of the README's first command
    train.train_and_evaluate(runs.tiny_config(num_steps=4, **{"eval.every": 2}),
                             str(tmp_path / "runs" / "gmm"))
  monkeypatch.chdir(tmp_path)
  capsys.readouterr()

  exec(compile(_python_blocks()[index], f"README.md example {index + 1}", "exec"), {})

  printed = capsys.readouterr().out
  assert printed.strip()
  assert "nan" not in printed
