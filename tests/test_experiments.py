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


@pytest.mark.slow
def test_compare_variants_writes_report_under_workdir(tmp_path):
  command = [sys.executable, "-m", "experiments.compare_variants", "--datasets=gmm",
             "--seeds=1", "--toy_steps=4", f"--workdir={tmp_path}"]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=300)

  assert result.returncode == 0, result.stderr[-3000:]
  page = (tmp_path / "report" / "RESULTS.md").read_text()
  assert f"--toy_steps=4 --workdir={tmp_path}`" in page
  assert "| discogan |" in page
  assert (tmp_path / "report" / "figures" / "gmm_variants.png").stat().st_size > 0
  with open(tmp_path / "gmm_gan_seed0" / "training_seconds.json") as handle:
    assert json.load(handle)["seconds"] > 0


@pytest.mark.parametrize("datasets,seeds,message", [
    (["gmmx"], 1, "--datasets must name some of"), (["gmm"], 0, "must be at least 1")])
def test_bad_flags_exit_with_one_line(datasets, seeds, message):
  with pytest.raises(SystemExit, match=message):
    runs.check_flags(datasets, seeds, None)


@pytest.mark.slow
def test_evaluator_smoothing_writes_figures(tmp_path):
  from tests.test_fashion_mnist import write_fake_idx_folder

  fashion_dir = tmp_path / "fashion"
  fashion_dir.mkdir()
  write_fake_idx_folder(fashion_dir, num_train=200, num_test=100)
  command = [sys.executable, "-m", "experiments.evaluator_smoothing", "--steps=2",
             f"--workdir={tmp_path}", f"--fashion_mnist_dir={fashion_dir}",
             f"--tfds_data_dir={tmp_path / 'tfds'}"]
  environment = {**os.environ, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}
  result = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True,
                          text=True, timeout=300)

  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / "evaluator_smoothing.json") as handle:
    records = json.load(handle)
  assert [record["label_smoothing"] for record in records] == [0.0, 0.1]
  for record in records:
    assert 0.0 <= record["test_accuracy"] <= 1.0
    assert record["median_feature_norm"] > 0
    assert record["frechet_distance_shoes_bags"] >= 0
    assert record["frechet_distance_bag_halves"] >= 0
  assert len(os.listdir(tmp_path / "evaluators")) == 2
