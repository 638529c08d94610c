"""Translation quality measures on maps with known answers, and best-step selection."""

import dataclasses
import json
import os
import types

import numpy as np
import pytest

from crossdomain import train
from crossdomain.data import gmm
from crossdomain.errors import UserInputError
from crossdomain.evaluation import classifier, evaluators, quality, selection
from tests import runs

MIXTURE_A = gmm.Mixture(((0.0, 0.0), (2.0, 2.0), (-2.0, 2.0)), 0.05)
MIXTURE_B = gmm.Mixture(((-1.0, -1.0), (1.0, 1.0)), 0.05)


def _toy_arrays(rng):
  a, modes_a = MIXTURE_A.sample(600, rng)
  b, modes_b = MIXTURE_B.sample(400, rng)
  return a, modes_a, b, modes_b


def test_toy_quality_of_ideal_map():
  a, modes_a, b, modes_b = _toy_arrays(np.random.default_rng(0))
  ab, _ = MIXTURE_B.sample(600, np.random.default_rng(1))
  ba, _ = MIXTURE_A.sample(400, np.random.default_rng(2))
  report = quality.ToyQuality((MIXTURE_A, MIXTURE_B), modes_a, modes_b)(
      {"a": a, "b": b, "ab": ab, "ba": ba, "aba": a, "bab": b})

  assert report.metrics["mode_coverage_ab"] == 2
  assert report.metrics["mode_coverage_ba"] == 3
  assert report.metrics["high_quality_ab"] > 0.97
  assert report.metrics["coverage_quality"] > 0.97
  assert report.metrics["cycle_mse_a"] == 0.0
  assert "off-mode" in report.details["mode_mapping_ab"]
  measure = quality.ToyQuality((MIXTURE_A, MIXTURE_B), modes_a, modes_b)
  assert sorted(measure.metric_names()) == sorted(report.metrics)


def test_toy_quality_of_collapsed_map():
  a, modes_a, b, modes_b = _toy_arrays(np.random.default_rng(0))
  ab = np.tile(MIXTURE_B.means[1], (len(a), 1))
  ba = np.tile(MIXTURE_A.means[0], (len(b), 1))
  report = quality.ToyQuality((MIXTURE_A, MIXTURE_B), modes_a, modes_b)(
      {"a": a, "b": b, "ab": ab, "ba": ba, "aba": a + 1.0, "bab": b})

  assert report.metrics["mode_coverage_ab"] == 1
  assert report.metrics["mode_coverage_ba"] == 1
  # One of two B modes and one of three A modes, every point on its mode.
  assert report.metrics["coverage_quality"] == pytest.approx((1 / 2 + 1 / 3) / 2)
  assert report.metrics["cycle_mse_a"] == pytest.approx(1.0)


def _synthetic_images(rng, count, domain):
  """16x16x1 uint8 images: A has a bright block at one of three columns (its subclass), B a bar."""
  images = rng.integers(0, 40, size=(count, 16, 16, 1)).astype(np.uint8)
  subclasses = rng.integers(0, 3, size=count)
  for image, subclass in zip(images, subclasses):
    if domain == "a":
      image[2:7, 1 + 5 * subclass:5 + 5 * subclass] = 250
    else:
      image[10:14, 2:14] = 250
  return images, subclasses


@pytest.fixture(scope="module")
def image_setup(tmp_path_factory):
  rng = np.random.default_rng(0)
  train_a, _ = _synthetic_images(rng, 300, "a")
  train_b, _ = _synthetic_images(rng, 300, "b")
  test_a, subclasses = _synthetic_images(rng, 240, "a")
  test_b, _ = _synthetic_images(rng, 240, "b")
  evaluator = evaluators.domain_pair_evaluator(
      str(tmp_path_factory.mktemp("evaluators")), "synthetic_16x16x1", train_a, train_b,
      test_a, test_b, steps=150, seed=0)
  measure = quality.ImageQuality(evaluator, (0,), (1,), subclasses, seed=0)
  scaled = {name: classifier.scale_images(images) for name, images in
            (("a", test_a), ("b", test_b))}
  return measure, scaled


def test_image_quality_of_real_images_as_translations(image_setup):
  measure, real = image_setup
  # A perfect translator's outputs are indistinguishable from real targets:
  # here they are the real targets themselves, so distances sit at zero.
  arrays = {"a": real["a"], "b": real["b"], "ab": real["b"], "ba": real["a"],
            "aba": real["a"], "bab": real["b"]}
  report = measure(arrays).metrics

  assert report["target_accuracy_ab"] > 0.95
  assert report["target_accuracy_ba"] > 0.95
  assert report["frechet_distance_ab"] == pytest.approx(0.0, abs=1e-6)
  assert report["cycle_mse_a"] == 0.0
  assert report["frechet_distance_floor_b"] > 0.0
  assert sorted(measure.metric_names()) == sorted(report)
  without_subclasses = dataclasses.replace(measure, subclasses_a=None)
  assert sorted(without_subclasses.metric_names()) == sorted(without_subclasses(arrays).metrics)


def test_image_quality_of_identity_map(image_setup):
  measure, real = image_setup
  arrays = {"a": real["a"], "b": real["b"], "ab": real["a"], "ba": real["b"],
            "aba": real["a"], "bab": real["b"]}
  report = measure(arrays).metrics

  # Nothing was translated: the evaluator sees the source domain.
  assert report["target_accuracy_ab"] < 0.05
  assert report["frechet_distance_ab"] > 10 * report["frechet_distance_floor_b"]
  # The source subclass is kept, so a probe reads it back.
  assert report["subclass_probe_accuracy"] > 0.9


def test_image_quality_of_collapsed_map(image_setup):
  measure, real = image_setup
  collapsed = np.repeat(real["b"][:1], len(real["a"]), axis=0)
  arrays = {"a": real["a"], "b": real["b"], "ab": collapsed, "ba": real["a"],
            "aba": real["a"], "bab": real["b"]}
  report = measure(arrays).metrics

  assert report["target_accuracy_ab"] > 0.95  # every output looks like a B
  assert report["subclass_probe_accuracy"] <= report["subclass_probe_chance"] + 1e-9
  assert report["frechet_distance_ab"] > 10 * report["frechet_distance_floor_b"]


def test_selection_tracks_best_and_patience():
  chosen = selection.Selection("frechet_distance_mean", patience=2, min_delta=0.5)
  assert chosen.update(10, {"frechet_distance_mean": 5.0})
  assert not chosen.update(20, {"frechet_distance_mean": 4.8})  # within min_delta
  assert not chosen.should_stop
  assert chosen.update(30, {"frechet_distance_mean": 4.0})
  assert not chosen.update(40, {"frechet_distance_mean": 6.0})
  assert not chosen.update(50, {"frechet_distance_mean": 4.1})
  assert chosen.should_stop
  assert (chosen.best_step, chosen.best_value) == (30, 4.0)

  higher = selection.Selection("target_accuracy_ab", patience=0, min_delta=0.0)
  higher.update(1, {"target_accuracy_ab": 0.5})
  assert higher.update(2, {"target_accuracy_ab": 0.6})
  assert not higher.should_stop


@pytest.mark.parametrize("min_delta,ending", [
    (0.5, "that do not improve on it by more than 0.5"), (0.0, "that do not improve on it")])
def test_selection_rule_names_min_delta_only_when_set(min_delta, ending):
  rule = selection.Selection("frechet_distance_mean", patience=3, min_delta=min_delta).rule()

  assert rule.endswith(ending)


def test_selection_rejects_unknown_metric():
  with pytest.raises(UserInputError, match="eval.metric 'fid' is not measured"):
    selection.Selection("fid", 0, 0.0).update(1, {"frechet_distance_mean": 1.0})


@pytest.mark.parametrize("metric, message", [("fid", "eval.metric 'fid' is not measured"),
                                             ("", "config.eval.metric is empty")])
def test_run_with_unmeasured_metric_stops_before_training(tmp_path, metric, message):
  config = runs.tiny_config(num_steps=100, **{"eval.every": 100, "eval.metric": metric})
  with pytest.raises(UserInputError, match=message) as error:
    train.train_and_evaluate(config, str(tmp_path))
  assert "coverage_quality" in str(error.value)
  assert not os.path.exists(tmp_path / "metrics.jsonl")
  assert not os.path.exists(tmp_path / "checkpoints")


def test_toy_run_keeps_best_checkpoint_and_stops_early(tmp_path):
  # No later evaluation can beat the first by min_delta, so the run stops
  # after `patience` more evaluations and keeps step 2 as its best.
  config = runs.tiny_config(num_steps=100, checkpoint_every=100, keep_checkpoints=1,
                            **{"eval.every": 2, "eval.patience": 2, "eval.min_delta": 10.0})
  state = train.train_and_evaluate(config, str(tmp_path))

  assert int(state.step) == 6
  with open(tmp_path / "ideal_state.json") as handle:
    ideal = json.load(handle)
  assert ideal["step"] == 2
  assert ideal["stopped_early"] is True
  assert ideal["evaluations"] == 3
  assert ideal["record_restarted_at_step"] is None
  assert ideal["metric"] == "coverage_quality"
  assert set(ideal["metrics"]) >= {"mode_coverage_ab", "mode_coverage_ba", "high_quality_ab",
                                   "high_quality_ba", "cycle_mse_a", "cycle_mse_b"}
  # The best checkpoint is kept beside the latest one.
  assert runs.saved_steps(str(tmp_path)) == [2, 6]
  assert os.path.getsize(tmp_path / "eval_metrics.png") > 0

  # Starting the stopped run again trains nothing more.
  again = train.train_and_evaluate(config, str(tmp_path))
  assert int(again.step) == 6


def test_resumed_run_keeps_best_checkpoint(tmp_path):
  # No evaluation after the first beats it by min_delta, so step 2 stays best.
  config = runs.tiny_config(num_steps=4, checkpoint_every=100, keep_checkpoints=1,
                            **{"eval.every": 2, "eval.patience": 0, "eval.min_delta": 10.0})
  train.train_and_evaluate(config, str(tmp_path))
  assert runs.saved_steps(str(tmp_path)) == [2, 4]

  config.num_steps = 8
  train.train_and_evaluate(config, str(tmp_path))
  assert runs.saved_steps(str(tmp_path)) == [2, 8]
  with open(tmp_path / "ideal_state.json") as handle:
    assert json.load(handle)["step"] == 2


def test_resume_under_other_measure_restarts_best_record(tmp_path, caplog):
  config = runs.tiny_config(num_steps=100, checkpoint_every=100, keep_checkpoints=1,
                            **{"eval.every": 2, "eval.patience": 2, "eval.min_delta": 10.0})
  train.train_and_evaluate(config, str(tmp_path))  # stops early at step 6, best step 2

  config.eval.min_share = 0.05
  with caplog.at_level("WARNING"):
    state = train.train_and_evaluate(config, str(tmp_path))

  assert "eval.min_share: 0.02 -> 0.05" in caplog.text
  # The first evaluation after the resume is the new best, and the run
  # stops after `patience` more.
  assert int(state.step) == 12
  with open(tmp_path / "ideal_state.json") as handle:
    ideal = json.load(handle)
  assert ideal["step"] == 8
  assert ideal["record_restarted_at_step"] == 6
  assert ideal["evaluations"] == 3  # steps 8, 10 and 12, not those before the restart
  assert runs.saved_steps(str(tmp_path)) == [8, 12]

  # A later resume under the same measure keeps the restart in the record.
  config.eval.patience = 3
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 14
  with open(tmp_path / "ideal_state.json") as handle:
    ideal = json.load(handle)
  assert ideal["record_restarted_at_step"] == 6
  assert ideal["evaluations"] == 4


def test_finished_run_keeps_ideal_state(tmp_path, caplog):
  config = runs.tiny_config(num_steps=4, checkpoint_every=100, **{"eval.every": 2})
  train.train_and_evaluate(config, str(tmp_path))
  before = (tmp_path / "ideal_state.json").read_text()

  # Nothing trains, so nothing is measured anew. The file keeps the old
  # metric's record, and the log explains why.
  config.eval.metric = "cycle_mse_a"
  with caplog.at_level("INFO"):
    train.train_and_evaluate(config, str(tmp_path))
  assert "starts again" not in caplog.text
  assert "This run has finished, and its best step" in caplog.text
  assert (tmp_path / "ideal_state.json").read_text() == before


@pytest.mark.slow
def test_resume_with_changed_folder_restarts_best_record(tmp_path, caplog):
  from tests.test_image_folders import tiny_run_config

  config = tiny_run_config(tmp_path)
  train.train_and_evaluate(config, str(tmp_path / "run"))
  (tmp_path / "a" / "000.png").unlink()

  config.num_steps = 4
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(config, str(tmp_path / "run"))

  assert "data contents: '32 and 32 images, sha256 " in caplog.text
  assert "-> '31 and 32 images, sha256 " in caplog.text
  # The changed folder has an evaluator of its own.
  assert len(os.listdir(tmp_path / "evaluators")) == 2


def test_measure_settings_follow_what_changes_values():
  config = runs.tiny_config()
  settings = quality.measure_settings(config)

  config.eval.every, config.eval.patience, config.data.batch_size = 7, 3, 16
  assert quality.measure_settings(config) == settings
  config.data.num_test = 50
  assert quality.measure_settings(config)["data.num_test"] == 50
  config.eval.metric = "cycle_mse_a"
  assert quality.measure_settings(config)["eval.metric"] == "cycle_mse_a"
  assert "data contents" not in settings
  assert quality.measure_settings(config, "4 and 4 rows, sha256 0")["data contents"] == (
      "4 and 4 rows, sha256 0")


def test_settings_added_later_are_not_compared():
  saved = quality.measure_settings(runs.tiny_config())
  current = quality.measure_settings(runs.tiny_config(), "4 and 4 rows, sha256 0")
  assert quality.measure_changes(saved, current, (32, 32)) == []


def test_vector_quality_measures_the_gap():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(400, 3)), rng.normal(size=(400, 3)) + 2.0
  measure = quality.VectorQuality(seed=0)
  perfect = measure({"a": a, "b": b, "ab": b[::-1], "ba": a[::-1], "aba": a, "bab": b})
  unmoved = measure({"a": a, "b": b, "ab": a, "ba": b, "aba": a + 0.5, "bab": b})

  assert set(perfect.metrics) == set(measure.metric_names())
  assert perfect.metrics["frechet_distance_ab"] == pytest.approx(0.0, abs=1e-9)
  # Means 2 apart in each of 3 dimensions: a squared distance of about 12.
  assert unmoved.metrics["frechet_distance_ab"] == pytest.approx(12.0, rel=0.15)
  assert unmoved.metrics["frechet_distance_floor_b"] < 0.2
  assert unmoved.metrics["cycle_mse_a"] == pytest.approx(0.25)
  assert perfect.metrics["cycle_mse_a"] == 0.0


def test_weak_evaluator_warning_names_remedy(caplog):
  weak = types.SimpleNamespace(test_accuracy=0.6)
  with caplog.at_level("WARNING"):
    quality._warn_if_weak(weak, "raise eval.evaluator_steps")
  assert "reaches only 60.0% test accuracy" in caplog.text
  assert caplog.text.rstrip().endswith("say little; raise eval.evaluator_steps.")

  caplog.clear()
  quality._warn_if_weak(types.SimpleNamespace(test_accuracy=0.95), "unused")
  assert caplog.text == ""


@pytest.mark.parametrize("count_a,count_b,steps,expected", [
    (5000, 4000, 1000, "raise eval.evaluator_steps or add images"),
    (51, 40, 1500, "add images: it trained on 51 images of A and 40 of B, each seen about "
                   "1882 times, so more steps would not help"),
])
def test_weak_pair_evaluator_remedy(count_a, count_b, steps, expected):
  assert quality._pair_remedy(count_a, count_b, steps) == expected


def test_max_examples_beyond_held_out_changes_nothing():
  config = runs.tiny_config()
  config.eval.max_examples = 3000
  saved = quality.measure_settings(config)

  config.eval.max_examples = 5000
  assert quality.measure_changes(saved, quality.measure_settings(config), (200, 200)) == []
  assert quality.measure_changes(saved, quality.measure_settings(config), (200, 4000)) == [
      "eval.max_examples: 3000 -> 5000"]
  config.eval.max_examples = 100
  assert quality.measure_changes(saved, quality.measure_settings(config), (200, 200)) == [
      "eval.max_examples: 3000 -> 100"]


def test_runs_of_every_seed_share_one_evaluator(tmp_path, caplog):
  from configs import image_folders as image_folders_config
  from crossdomain import data as data_lib
  from tests.test_image_folders import folders_config, write_color_folder

  config = image_folders_config.get_config()
  config.data = folders_config(write_color_folder(tmp_path / "a", 32),
                               write_color_folder(tmp_path / "b", 32), image_size=16)
  config.eval.evaluator_dir = str(tmp_path / "evaluators")
  config.eval.evaluator_steps = 2
  with caplog.at_level("WARNING"):
    for seed in (0, 1):
      config.seed = seed
      quality.make_quality(config, data_lib.load(config.data, seed))
  cached = os.listdir(config.eval.evaluator_dir)
  # Small folders hold out few images, so the floors are flagged.
  assert "below 256 images they are inflated" in caplog.text
  assert len(cached) == 1, cached
  assert cached[0].endswith("_2steps_seed0_smooth0.1"), cached

  # Batches drawn differently leave the examples and so the evaluator as they are.
  config.data.batch_size, config.data.num_sample_examples = 4, 2
  quality.make_quality(config, data_lib.load(config.data, 1))
  assert len(os.listdir(config.eval.evaluator_dir)) == 1

  config.eval.evaluator_seed = 1
  quality.make_quality(config, data_lib.load(config.data, 1))
  assert len(os.listdir(config.eval.evaluator_dir)) == 2


@pytest.mark.parametrize("config_name, max_examples, train_count, remedy", [
    ("image_folders", 3000, 34,
     "set data.test_fraction to 0.22, which holds out 9 of its 40 images and leaves 31 for "
     "training, the most that data.batch_size can then be"),
    ("image_folders", 3000, 6, "add images: it has 12"),
    ("shoes_bags", 3000, 6, "add images to the dataset's validation split"),
    ("shoes_bags", 4, 6, "raise eval.max_examples"),
])
def test_too_few_held_out_images_names_the_fix(config_name, max_examples, train_count, remedy):
  import importlib

  from crossdomain import data as data_lib

  config = importlib.import_module(f"configs.{config_name}").get_config()
  config.eval.max_examples = max_examples
  train_images = np.zeros((train_count, 8, 8, 3), np.uint8)
  test_images = np.zeros((6, 8, 8, 3), np.uint8)
  domain = data_lib.Domain(train_images, np.zeros(train_count, np.int64), test_images,
                           np.zeros(6, np.int64))
  problem = f"has [46] held-out images for evaluation, which needs at least 8; {remedy}"
  # Both domains fall short, and one error names both.
  with pytest.raises(UserInputError, match=f"^domain A {problem}. Also, domain B {problem}$"):
    quality.make_quality(config, data_lib.DomainPair(domain, domain))


def test_floors_are_drawn_on_their_metrics_panels(tmp_path):
  from crossdomain import plotting

  measure = quality.ImageQuality(None, (0,), (1,), subclasses_a=np.zeros(4, np.int64))
  names = measure.metric_names()
  panels = plotting.reference_panels(names)

  assert panels == {
      "frechet_distance_floor_b": "frechet_distance_ab", "kid_floor_b": "kid_ab",
      "frechet_distance_floor_a": "frechet_distance_ba", "kid_floor_a": "kid_ba",
      "subclass_probe_accuracy_real": "subclass_probe_accuracy",
      "subclass_probe_chance": "subclass_probe_accuracy"}
  history = [(step, {name: float(step) for name in names}) for step in (10, 20)]
  plotting.save_eval_plot(str(tmp_path / "eval.png"), history, "frechet_distance_mean", 20,
                          restarted_at=10)
  assert os.path.getsize(tmp_path / "eval.png") > 0
