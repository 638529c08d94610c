"""End-to-end training on tiny toy mixtures: outputs, resumption, variants."""

import json
import os

import jax
import numpy as np
import pytest

from configs import csv as csv_config, gmm as gmm_config
from crossdomain import reporting, steps, train
from crossdomain.models import build_networks
from tests import runs


def _tiny_config(**overrides):
  config = gmm_config.get_config()
  config.num_steps = 6
  config.log_every = 1
  config.sample_every = 3
  config.checkpoint_every = 3
  config.data.num_train = 64
  config.data.num_test = 32
  config.data.batch_size = 16
  config.model.hidden = (16, 16)
  for name, value in overrides.items():
    section, _, field = name.rpartition("__")
    (config[section] if section else config)[field] = value
  return config


def _records(workdir, prefix="train_"):
  """Return the metrics.jsonl records of one kind: train_ or eval_ metrics."""
  with open(os.path.join(workdir, "metrics.jsonl")) as handle:
    records = [json.loads(line) for line in handle]
  return [r for r in records if any(name.startswith(prefix) for name in r)]


def _assert_trees_equal(left, right):
  for x, y in zip(jax.tree.leaves(left), jax.tree.leaves(right), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_run_writes_outputs(tmp_path):
  workdir = str(tmp_path)
  state = train.train_and_evaluate(_tiny_config(), workdir)

  assert int(state.step) == 6
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
  assert sorted(os.listdir(os.path.join(workdir, "figures"))) == [
      "toy_scatter_0000003.png", "toy_scatter_0000006.png"]
  assert os.path.getsize(os.path.join(workdir, "losses.png")) > 0
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  records = _records(workdir)
  assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
  # "DG": odd steps update the discriminators, even steps the generators.
  assert "train_d_loss" in records[0]
  assert "train_g_loss" not in records[0]
  assert "train_g_loss" in records[1]
  assert "train_d_loss" not in records[1]
  assert all(np.isfinite(v) for r in records for v in r.values())


def test_resume_matches_uninterrupted_run(tmp_path):
  uninterrupted = train.train_and_evaluate(_tiny_config(), str(tmp_path / "whole"))

  split = str(tmp_path / "split")
  first = train.train_and_evaluate(_tiny_config(num_steps=3), split)
  assert int(first.step) == 3
  resumed = train.train_and_evaluate(_tiny_config(), split)

  assert int(resumed.step) == 6
  _assert_trees_equal(resumed, uninterrupted)
  assert [r["step"] for r in _records(split)] == [1, 2, 3, 4, 5, 6]


def test_finished_run_restarts_as_no_op(tmp_path):
  workdir = str(tmp_path)
  done = train.train_and_evaluate(_tiny_config(), workdir)
  again = train.train_and_evaluate(_tiny_config(), workdir)
  _assert_trees_equal(again, done)


@pytest.mark.slow
def test_seed_decides_the_run(tmp_path):
  first = train.train_and_evaluate(_tiny_config(num_steps=2), str(tmp_path / "a"))
  same = train.train_and_evaluate(_tiny_config(num_steps=2), str(tmp_path / "b"))
  other = train.train_and_evaluate(_tiny_config(num_steps=2, seed=1), str(tmp_path / "c"))
  _assert_trees_equal(first.generator_params, same.generator_params)
  leaves = zip(jax.tree.leaves(first.generator_params), jax.tree.leaves(other.generator_params))
  assert any(not np.array_equal(x, y) for x, y in leaves)


@pytest.mark.parametrize("variant,cycles", [("gan", (0.0, 0.0)), ("recongan", (1.0, 0.0)),
                                            ("discogan", (1.0, 1.0))])
def test_generator_loss_follows_variant(tmp_path, variant, cycles):
  train.train_and_evaluate(_tiny_config(num_steps=2, loss__variant=variant), str(tmp_path))
  record = _records(str(tmp_path))[1]  # step 2 updates the generators
  w = 0.5  # the toy's constant reconstruction weight
  expected = 0.0
  for source, target, cycle in (("a", "b", cycles[0]), ("b", "a", cycles[1])):
    gan, recon = record[f"train_gan_{target}"], record[f"train_recon_{source}"]
    expected += (1 - w) * gan + w * recon if cycle else gan
  assert record["train_g_loss"] == pytest.approx(expected, rel=1e-5)
  assert ("train_recon_weight" in record) == any(cycles)


def test_untied_generators_train_four_networks(tmp_path):
  initial = train.train_and_evaluate(_tiny_config(num_steps=1, model__tie_generators=False),
                                     str(tmp_path / "init"))
  state = train.train_and_evaluate(_tiny_config(num_steps=2, model__tie_generators=False),
                                   str(tmp_path / "run"))
  assert sorted(state.generator_params) == ["g_ab", "g_ba", "r_ab", "r_ba"]
  # After one generator step every network has moved: each has a loss term.
  for name in state.generator_params:
    before = jax.tree.leaves(initial.generator_params[name])
    after = jax.tree.leaves(state.generator_params[name])
    assert any(not np.array_equal(x, y) for x, y in zip(before, after)), name


@pytest.mark.parametrize("variant,untrained", [("gan", {"r_ab", "r_ba"}),
                                                ("recongan", {"r_ab"}), ("discogan", set())])
def test_untrained_networks_stay_under_weight_decay(variant, untrained):
  config = _tiny_config(model__tie_generators=False, loss__variant=variant,
                        optimizer__weight_decay=1e-3)
  networks = build_networks(config.model, (2,), (2,))
  state = steps.init_state(networks, config, (2,), (2,))
  batch_a, batch_b = np.random.default_rng(0).normal(size=(2, 16, 2)).astype(np.float32)

  after, _ = steps.generator_step(state, batch_a, batch_b, networks=networks, config=config)

  for name in state.generator_params:
    pairs = zip(jax.tree.leaves(after.generator_params[name]),
                jax.tree.leaves(state.generator_params[name]))
    moved = any(not np.array_equal(x, y) for x, y in pairs)
    assert moved == (name not in untrained), name


@pytest.mark.parametrize("gan", ["bce", "least_squares"])
def test_discriminator_scores_follow_gan_loss(gan):
  config = _tiny_config(loss__gan=gan)
  networks = build_networks(config.model, (2,), (2,))
  state = steps.init_state(networks, config, (2,), (2,))
  batch_a, batch_b = np.random.default_rng(0).normal(size=(2, 16, 2)).astype(np.float32)

  _, metrics = steps.discriminator_step(state, batch_a, batch_b, networks=networks,
                                        config=config)

  module = networks.discriminators["d_a"]
  (logits, _), _ = steps._apply(module, state.discriminator_params["d_a"],
                                state.discriminator_stats["d_a"], batch_a, True)
  expected = np.mean(jax.nn.sigmoid(logits) if gan == "bce" else logits)
  np.testing.assert_allclose(metrics["d_real_score_a"], expected, rtol=1e-5)


def _initial_state(config):
  networks = build_networks(config.model, (2,), (2,))
  return steps.init_state(networks, config, (2,), (2,))


def test_each_step_updates_only_its_networks(tmp_path):
  config = _tiny_config(num_steps=1)
  initial = _initial_state(config)
  after_d = train.train_and_evaluate(config, str(tmp_path / "d"))
  after_g = train.train_and_evaluate(_tiny_config(num_steps=1, update_cycle="GD"),
                                     str(tmp_path / "g"))

  _assert_trees_equal(after_d.generator_params, initial.generator_params)
  _assert_trees_equal(after_g.discriminator_params, initial.discriminator_params)
  for changed, before in ((after_d.discriminator_params, initial.discriminator_params),
                          (after_g.generator_params, initial.generator_params)):
    pairs = zip(jax.tree.leaves(changed), jax.tree.leaves(before))
    assert all(not np.array_equal(x, y) for x, y in pairs)


def test_progress_times_from_restart(monkeypatch):
  now = [0.0]
  monkeypatch.setattr(reporting.time, "perf_counter", lambda: now[0])
  progress = reporting.Progress(0, 100)
  now[0] = 30.0  # the first steps, with compilation
  progress.restart(2)
  now[0] = 31.0
  assert progress.update(12) == (10.0, 8.8)
  assert progress.update(12)[1] == float("inf")  # no step since the last update
  assert reporting.format_duration(float("inf")) == "?"


def test_progress_leaves_other_work_out(monkeypatch):
  now = [0.0]
  monkeypatch.setattr(reporting.time, "perf_counter", lambda: now[0])
  progress = reporting.Progress(0, 100)
  now[0] = 1.0  # 10 steps
  progress.exclude(0.0)
  now[0] = 6.0  # an evaluation of 5 s
  progress.exclude(5.0)

  rate, seconds_left = progress.update(10, other_seconds_left=15.0)

  assert rate == 10.0
  assert seconds_left == 9.0 + 15.0


@pytest.mark.parametrize("after,period,last_step,expected", [
    (0, 10, 100, 10), (5, 10, 100, 10), (10, 10, 100, 9), (0, 10, 95, 10), (90, 10, 95, 1),
    (95, 10, 95, 0), (100, 10, 100, 0), (0, 1000, 100, 1)])
def test_count_due_matches_due(after, period, last_step, expected):
  assert train._count_due(after, period, last_step) == expected
  assert expected == sum(train._due(step, period, last_step)
                         for step in range(after + 1, last_step + 1))


def test_time_left_names_work_not_timed_yet(tmp_path, caplog):
  config = runs.tiny_config(num_steps=8, log_every=2, sample_every=6, **{"eval.every": 4})
  with caplog.at_level("INFO"):
    train.train_and_evaluate(config, str(tmp_path))
  lines = {record.args[0]: record.getMessage() for record in caplog.records
           if " steps/s, " in record.msg}

  # Each step logs before it draws figures or evaluates.
  assert lines[4].endswith("left plus sample figures and evaluations, not timed yet")
  assert lines[6].endswith("left plus sample figures, not timed yet")  # evaluated at 4
  assert lines[8].endswith(" left")  # nothing is due after the last step


def _csv_config(tmp_path, rows):
  """Return a tiny run config of two CSV files of `rows` 2-D points, 10% held out."""
  rng = np.random.default_rng(0)
  for name in ("a", "b"):
    np.savetxt(tmp_path / f"{name}.csv", rng.normal(size=(rows, 2)), delimiter=",")
  config = csv_config.get_config()
  config.data.csv_a, config.data.csv_b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
  config.data.batch_size = 8
  config.model.hidden = (8, 8)
  config.num_steps, config.log_every, config.sample_every, config.eval.every = 4, 2, 4, 2
  return config


def test_csv_run_evaluates_and_keeps_best_step(tmp_path):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_csv_config(tmp_path, rows=100), str(workdir))

  evaluations = _records(str(workdir), prefix="eval_")
  assert [record["step"] for record in evaluations] == [2, 4]
  assert all(record["eval_frechet_distance_mean"] >= 0 for record in evaluations)
  with open(workdir / "ideal_state.json") as handle:
    assert json.load(handle)["metric"] == "frechet_distance_mean"


def test_small_csv_run_draws_loss_graph_only(tmp_path, caplog):
  # 40 rows hold out 4 per domain, too few to evaluate.
  workdir = tmp_path / "run"
  with caplog.at_level("INFO"):
    train.train_and_evaluate(_csv_config(tmp_path, rows=40), str(workdir))
  lines = [record.getMessage() for record in caplog.records if " steps/s, " in record.msg]

  assert "held-out rows, and evaluation needs at least 8" in caplog.text
  assert lines[0].endswith("left plus loss graphs, not timed yet")
  assert (workdir / "losses.png").is_file()
  assert not (workdir / "figures").exists()
