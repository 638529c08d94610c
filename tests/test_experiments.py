"""The shared runs of the experiments: reuse, resume and where the results page goes."""

import json
import os
import subprocess
import sys

import pytest

from crossdomain import train
from experiments import runs

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_one_trains_then_reuses(tmp_path, monkeypatch):
  first = runs.run_one("gmm", "discogan", 0, root=str(tmp_path), fashion_steps=1, toy_steps=4)

  def fail(*args, **kwargs):
    raise AssertionError("a finished run trained again")

  monkeypatch.setattr(train, "train_and_evaluate", fail)
  again = runs.run_one("gmm", "discogan", 0, root=str(tmp_path), fashion_steps=1, toy_steps=4)

  assert first["num_steps"] == 4
  assert again["seconds"] == first["seconds"] > 0
  assert again["step"] == first["step"]


def test_run_one_continues_a_shorter_run(tmp_path):
  runs.run_one("gmm", "gan", 0, root=str(tmp_path), fashion_steps=1, toy_steps=4)
  longer = runs.run_one("gmm", "gan", 0, root=str(tmp_path), fashion_steps=1, toy_steps=8)

  assert longer["num_steps"] == 8
  assert runs._trained_steps(longer["workdir"]) == 8


def test_run_one_rejects_a_longer_run(tmp_path):
  runs.run_one("gmm", "gan", 0, root=str(tmp_path), fashion_steps=1, toy_steps=8)

  with pytest.raises(SystemExit, match="contains a run of 8 steps, more than the 4 requested"):
    runs.run_one("gmm", "gan", 0, root=str(tmp_path), fashion_steps=1, toy_steps=4)


def test_compare_variants_writes_report_under_workdir(tmp_path):
  command = [sys.executable, "-m", "experiments.compare_variants", "--datasets=gmm",
             "--seeds=1", "--toy_steps=4", f"--workdir={tmp_path}"]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)

  assert result.returncode == 0, result.stderr[-3000:]
  page = (tmp_path / "report" / "RESULTS.md").read_text()
  assert "--toy_steps=4" in page
  assert "| discogan |" in page
  assert (tmp_path / "report" / "figures" / "gmm_variants.png").stat().st_size > 0
  with open(tmp_path / "gmm_gan_seed0" / "training_seconds.json") as handle:
    assert json.load(handle)["seconds"] > 0


@pytest.mark.parametrize("datasets,seeds,message", [
    (["gmmx"], 1, "--datasets must name some of"), (["gmm"], 0, "must be at least 1")])
def test_bad_flags_exit_with_one_line(datasets, seeds, message):
  with pytest.raises(SystemExit, match=message):
    runs.check_flags(datasets, seeds, None)
