"""The evaluate command: NPZ files from any program, and checkpoints of a run."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from configs import gmm as gmm_config
from crossdomain import data as data_lib, evaluate, train
from crossdomain.errors import UserInputError
from tests import runs

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _evaluate(*flags):
  command = [sys.executable, "-m", "crossdomain.evaluate", *flags]
  return subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=180)


def _toy_arrays(collapse_ab: bool) -> dict[str, np.ndarray]:
  """Held-out toy points with translations drawn from the target mixtures.

  With `collapse_ab`, every translation A -> B lands on B's first mode.
  """
  config = gmm_config.get_config()
  domains = data_lib.load(config.data, config.seed)
  mixture_a, mixture_b = domains.mixtures
  rng = np.random.default_rng(0)
  a, b = domains.a.test, domains.b.test
  ab, _ = mixture_b.sample(len(a), rng)
  if collapse_ab:
    ab = np.repeat(mixture_b.means[:1], len(a), axis=0)
  ba, _ = mixture_a.sample(len(b), rng)
  return {"a": a, "ab": ab, "aba": a, "b": b, "ba": ba, "bab": b}


@pytest.mark.parametrize("collapse_ab,coverage_ab", [(False, 2.0), (True, 1.0)])
def test_npz_scores_known_coverage(tmp_path, collapse_ab, coverage_ab):
  path = tmp_path / "translations.npz"
  np.savez(path, **_toy_arrays(collapse_ab))
  if collapse_ab:
    step, report, written = evaluate.run(npz=str(path), config=gmm_config.get_config())
    assert step is None
    assert written is None
    printed = json.loads(evaluate.render(str(path), step, report, written, as_json=True))
  else:
    # Through the command line once, to check that main passes --npz and --config to run.
    result = _evaluate(f"--npz={path}", "--config=configs/gmm.py", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
  assert printed["source"] == str(path)
  assert printed["step"] is None
  metrics = printed["metrics"]
  assert metrics["mode_coverage_ab"] == coverage_ab
  assert metrics["mode_coverage_ba"] == 5.0
  assert metrics["high_quality_ba"] > 0.95
  # The reconstructions are the sources themselves.
  assert metrics["cycle_mse_a"] == metrics["cycle_mse_b"] == 0.0


def test_npz_missing_array_named(tmp_path):
  arrays = _toy_arrays(False)
  del arrays["bab"]
  path = tmp_path / "partial.npz"
  np.savez(path, **arrays)
  config = gmm_config.get_config()
  with pytest.raises(UserInputError, match=re.escape("lacks arrays ['bab']")):
    evaluate.read_npz(str(path), data_lib.load(config.data, config.seed))


@pytest.mark.parametrize("rows", [200, 201])
def test_npz_wrong_width_named(tmp_path, rows):
  arrays = {name: np.zeros((rows, 3), np.float32) for name in evaluate.ARRAY_NAMES}
  path = tmp_path / "wide.npz"
  np.savez(path, **arrays)
  config = gmm_config.get_config()
  with pytest.raises(UserInputError, match=re.escape(f"has shape ({rows}, 3), expected [N, 2]")):
    evaluate.read_npz(str(path), data_lib.load(config.data, config.seed))


def _with_row_of(arrays, name, value):
  changed = arrays[name].astype(np.float64)
  changed[3] = value
  return {**arrays, name: changed}


@pytest.mark.parametrize("change, message", [
    (lambda arrays: {**arrays, "a": arrays["a"][:0]}, "array 'a' has no rows"),
    (lambda arrays: _with_row_of(arrays, "ab", np.nan),
     "array 'ab' has NaN or infinite values in 1 of 512 rows, the first at row 3"),
    (lambda arrays: _with_row_of(arrays, "bab", np.inf), "array 'bab' has NaN or infinite"),
    (lambda arrays: {**arrays, "ba": np.full(arrays["ba"].shape, "x")},
     "array 'ba' contains <U1 values; expected numbers"),
])
def test_npz_bad_values_named(tmp_path, change, message):
  path = tmp_path / "bad.npz"
  np.savez(path, **change(_toy_arrays(False)))
  config = gmm_config.get_config()
  with pytest.raises(UserInputError, match=re.escape(message)):
    evaluate.read_npz(str(path), data_lib.load(config.data, config.seed))


def test_npz_of_other_formats_named(tmp_path):
  config = gmm_config.get_config()
  domains = data_lib.load(config.data, config.seed)
  text = tmp_path / "notes.npz"
  text.write_text("a,b\n1,2\n")
  with pytest.raises(UserInputError, match="is not an NPZ file"):
    evaluate.read_npz(str(text), domains)
  objects = tmp_path / "objects.npz"
  np.savez(objects, **{**_toy_arrays(False), "ab": np.array([{"x": 1}], dtype=object)})
  with pytest.raises(UserInputError, match="array 'ab' .* cannot be read without pickle"):
    evaluate.read_npz(str(objects), domains)


def test_npz_requires_config(tmp_path):
  # Through the command line once: the message is one line, without a traceback.
  result = _evaluate(f"--npz={tmp_path / 'any.npz'}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "error: --npz needs --config, the run config that names the domains")
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("images", [
    np.array([[0, 255], [255, 0]], np.uint8),
    np.array([[0.0, 1.0], [1.0, 0.0]], np.float32),
    np.array([[-1.0, 1.0], [1.0, -1.0]], np.float32),
])
def test_image_encodings_map_to_model_range(images):
  converted = evaluate.images_to_model_range(images[None], (2, 2, 1), "ab")
  assert converted.shape == (1, 2, 2, 1)
  np.testing.assert_allclose(converted[0, :, :, 0], [[-1.0, 1.0], [1.0, -1.0]])


def test_images_out_of_range_are_rejected():
  with pytest.raises(UserInputError, match=r"array 'ab' spans \[0, 3\]"):
    evaluate.images_to_model_range(np.array([[[0.0, 3.0]]]), (1, 2, 1), "ab")


@pytest.mark.slow
def test_checkpoint_report_written(tmp_path):
  config = runs.tiny_config(num_steps=4)
  train.train_and_evaluate(config, str(tmp_path))
  result = _evaluate(f"--workdir={tmp_path}", "--step=latest", "--json")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Given directory is read only" not in result.stderr
  assert "read_only=True" not in result.stderr
  printed = json.loads(result.stdout)
  assert printed["source"] == str(tmp_path)
  assert printed["step"] == 4
  metrics = printed["metrics"]
  with open(tmp_path / "evaluation_0000004.json") as handle:
    written = json.load(handle)
  assert written["step"] == 4
  assert written["metrics"] == pytest.approx(metrics)
  assert {"mode_coverage_ab", "mode_coverage_ba", "high_quality_ab",
          "high_quality_ba"} <= set(metrics)

  step, report, path = evaluate.run(workdir=str(tmp_path))
  text = evaluate.render(str(tmp_path), step, report, path, as_json=False)
  assert text.startswith(f"Translation quality of {tmp_path} at step 4:\n")
  assert f"\n  {'mode_coverage_ab':32s} {metrics['mode_coverage_ab']:.6g}\n" in text
  assert "\n\nmode_mapping_ab:\n" in text
  assert text.endswith(f"Wrote the metrics and details to {tmp_path / 'evaluation_0000004.json'}")


@pytest.mark.slow
def test_checkpoint_of_moved_folders_evaluates_with_set(tmp_path):
  from tests.test_image_folders import tiny_run_config

  config = tiny_run_config(tmp_path)
  workdir = tmp_path / "run"
  train.train_and_evaluate(config, str(workdir))
  os.rename(tmp_path / "a", tmp_path / "moved_a")

  with pytest.raises(UserInputError, match="check data.folder_a.*--set=data.folder_a="):
    evaluate.evaluate_checkpoint(str(workdir), "latest")
  step, report = evaluate.evaluate_checkpoint(
      str(workdir), "latest", [f"data.folder_a={tmp_path / 'moved_a'}"])

  assert step == 2
  # The evaluator is keyed by the folders' contents, not their places, so
  # the moved folder reuses it and scores what training scored.
  assert len(os.listdir(tmp_path / "evaluators")) == 1
  with open(workdir / "metrics.jsonl") as handle:
    trained = [json.loads(line) for line in handle][-1]
  assert trained["step"] == 2
  assert report.metrics["frechet_distance_mean"] == pytest.approx(
      trained["eval_frechet_distance_mean"], rel=1e-5)


@pytest.mark.parametrize("assignment,message", [
    ("data.folder_a", "must have the form FIELD=PATH"),
    ("data.num_test=5", "cannot change 'data.num_test'"),
    ("data.folder_a=/x", "has no such field"),
    ("eval.evaluator_dir=/x,eval.evaluator_dir=/y", "names eval.evaluator_dir twice"),
])
def test_set_rejects_other_fields(assignment, message):
  config = gmm_config.get_config()

  with pytest.raises(UserInputError, match=message):
    evaluate.set_locations(config, assignment.split(","))


def test_no_mode_gives_one_line_error():
  result = _evaluate()
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1] == (
      "error: give exactly one of --workdir (a training run) and --npz (saved translations); "
      "see --help")
  assert "--workdir: Workdir" not in result.stderr  # no flag listing before it


def test_set_changes_a_location():
  config = gmm_config.get_config()

  evaluate.set_locations(config, ["eval.evaluator_dir=/cache/evaluators"])

  assert config.eval.evaluator_dir == "/cache/evaluators"
