"""The translate command on a trained toy run."""

import csv
import json
import logging
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import gmm as gmm_config
from crossdomain import steps, train, translate
from crossdomain.errors import UserInputError
from crossdomain.models import build_networks
from tests import runs, test_image_folders


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("toy")
  config = gmm_config.get_config()
  config.num_steps = 4
  config.checkpoint_every = 2
  config.eval.every = 2
  config.data.num_train = 32
  config.data.batch_size = 16
  config.model.hidden = (8, 8)
  state = train.train_and_evaluate(config, str(workdir))
  return str(workdir), state


def test_load_translator_logs_no_warnings(toy_run, caplog):
  workdir, _ = toy_run
  with caplog.at_level(logging.WARNING):
    translator = translate.load_translator(workdir, "latest")

  assert translator.step == 4
  assert caplog.text == ""


@pytest.mark.slow
def test_translator_reads_two_device_run(tmp_path):
  runs.finish(runs.start(tmp_path, devices=2, num_steps=2))

  # This process has one device, and the run saved its arrays from two.
  translator = translate.load_translator(str(tmp_path), "latest")
  assert translator.step == 2


def test_load_translator_takes_an_int_step(toy_run):
  workdir, _ = toy_run

  assert translate.load_translator(workdir, 2).step == 2


def test_damaged_checkpoint_is_named(toy_run, tmp_path):
  workdir = tmp_path / "copy"
  shutil.copytree(toy_run[0], workdir)
  folder = workdir / "checkpoints" / "4" / "generators"
  damaged = max((path for path in folder.rglob("*") if path.is_file()),
                key=lambda path: path.stat().st_size)
  damaged.write_bytes(damaged.read_bytes()[:100])

  with pytest.raises(UserInputError, match="checkpoint at step 4 .* cannot be read .* step 2"):
    translate.load_translator(str(workdir), "latest")


def _write_csv(path, rows):
  with open(path, "w", newline="") as handle:
    csv.writer(handle).writerows(rows)


def test_translates_csv_with_reconstruction(toy_run, tmp_path):
  workdir, _ = toy_run
  _write_csv(tmp_path / "points.csv", [["x", "y"], [0.0, 0.0], [2.0, 2.0], [-1.0, 1.0]])
  translator = translate.load_translator(workdir, "latest")
  written = translate.translate_path(translator, "a2b", str(tmp_path / "points.csv"),
                                     str(tmp_path / "out"), with_reconstruction=True)

  assert [p.rsplit("/", 1)[1] for p in written] == ["points_translated.csv",
                                                     "points_reconstructed.csv"]
  # The toy's domain B has no column names, so only the reconstruction,
  # which lies in the input's domain, keeps the input's header row.
  translated = np.loadtxt(written[0], delimiter=",")
  with open(written[1]) as handle:
    assert handle.readline().strip() == "x,y"
  reconstructed = np.loadtxt(written[1], delimiter=",", skiprows=1)
  assert translated.shape == reconstructed.shape == (3, 2)
  expected = translator(np.array([[0.0, 0.0], [2.0, 2.0], [-1.0, 1.0]], np.float32), "a2b")
  np.testing.assert_allclose(translated, expected["translated"], rtol=1e-6)


def test_translated_csv_takes_target_columns_and_reads_back(tmp_path):
  from configs import csv as csv_config

  rng = np.random.default_rng(0)
  _write_csv(tmp_path / "a.csv", [["p", "q", "r"], *rng.normal(size=(40, 3)).tolist()])
  _write_csv(tmp_path / "b.csv", [["u", "v"], *rng.normal(size=(40, 2)).tolist()])
  config = csv_config.get_config()
  config.data.csv_a, config.data.csv_b = str(tmp_path / "a.csv"), str(tmp_path / "b.csv")
  config.num_steps, config.data.batch_size, config.model.hidden = 2, 8, (8,)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  assert not os.path.exists(os.path.join(workdir, "figures"))  # no figures for CSV data
  translator = translate.load_translator(workdir, "latest")

  to_b = translate.translate_path(translator, "a2b", str(tmp_path / "a.csv"),
                                  str(tmp_path / "b_made"), with_reconstruction=True)
  to_a = translate.translate_path(translator, "b2a", to_b[0], str(tmp_path / "a_made"),
                                  with_reconstruction=False)
  headers = []
  for path in (*to_b, *to_a):
    with open(path) as handle:
      headers.append(handle.readline().strip())
  assert headers == ["u,v", "p,q,r", "p,q,r"]
  assert np.loadtxt(to_a[0], delimiter=",", skiprows=1).shape == (40, 3)


def test_output_that_is_a_file_is_an_error(toy_run, tmp_path):
  workdir, _ = toy_run
  _write_csv(tmp_path / "points.csv", [[0.0, 0.0]])
  (tmp_path / "taken").write_text("")
  translator = translate.load_translator(workdir, "latest")
  with pytest.raises(UserInputError, match="--output .*taken is a file; name a folder"):
    translate.translate_path(translator, "a2b", str(tmp_path / "points.csv"),
                             str(tmp_path / "taken"), with_reconstruction=False)


def test_failed_translation_creates_no_output_folder(toy_run, tmp_path):
  workdir, _ = toy_run
  _write_csv(tmp_path / "wide.csv", [[0.0, 0.0, 1.0]])
  translator = translate.load_translator(workdir, "latest")
  with pytest.raises(UserInputError, match="3 values per row"):
    translate.translate_path(translator, "a2b", str(tmp_path / "wide.csv"),
                             str(tmp_path / "out"), with_reconstruction=False)
  assert not os.path.exists(tmp_path / "out")


def test_loads_only_generators_of_chosen_step(toy_run):
  workdir, state = toy_run
  translator = translate.load_translator(workdir, "2")
  assert translator.step == 2
  assert sorted(translator.params) == ["g_ab", "g_ba"]
  latest = translate.load_translator(workdir, "latest")
  np.testing.assert_array_equal(latest.params["g_ab"]["Dense_0"]["kernel"],
                                state.generator_params["g_ab"]["Dense_0"]["kernel"])


def test_wrong_vector_length_names_file_and_line(toy_run, tmp_path):
  workdir, _ = toy_run
  _write_csv(tmp_path / "bad.csv", [[0.0, 0.0], [1.0, 2.0, 3.0]])
  translator = translate.load_translator(workdir, "latest")
  with pytest.raises(UserInputError, match=r"line 2 of .*bad.csv has a different number of "
                                           r"values \(3\) than the first row \(2\)"):
    translate.translate_path(translator, "b2a", str(tmp_path / "bad.csv"),
                             str(tmp_path / "out"), with_reconstruction=False)

  _write_csv(tmp_path / "wide.csv", [[0.0, 0.0, 1.0], [1.0, 2.0, 3.0]])
  with pytest.raises(UserInputError, match=r"wide.csv has 3 values per row, but the model "
                                           r"expects vectors of 2"):
    translate.translate_path(translator, "b2a", str(tmp_path / "wide.csv"),
                             str(tmp_path / "out"), with_reconstruction=False)


def test_best_step_comes_from_ideal_state(toy_run, tmp_path):
  workdir, _ = toy_run
  with open(os.path.join(workdir, "ideal_state.json")) as handle:
    best = json.load(handle)["step"]
  assert translate.load_translator(workdir, "best").step == best

  shutil.copytree(os.path.join(workdir, "checkpoints"), tmp_path / "checkpoints")
  with pytest.raises(UserInputError, match="ideal_state.json not found: the step 'best' needs a "
                                           "run that evaluated during training"):
    translate.load_translator(str(tmp_path), "best")


def test_integer_vectors_get_vector_advice(toy_run):
  translator = translate.load_translator(toy_run[0])
  with pytest.raises(UserInputError, match=r"got dtype int32. Convert vectors with "
                                           r"x.astype\(np.float32\).$"):
    translator(np.zeros((2, 2), np.int32), "a2b")


def test_missing_checkpoint_step_is_an_error(toy_run):
  workdir, _ = toy_run
  with pytest.raises(UserInputError, match="no checkpoint at step 3"):
    translate.load_translator(workdir, "3")


@pytest.mark.parametrize("step", ["best", "latest", "3"])
def test_workdir_without_checkpoints_says_train_first(tmp_path, step):
  with pytest.raises(UserInputError, match="no checkpoint in .*; train first") as raised:
    translate.resolve_step(str(tmp_path), step, None)
  assert "--config=CONFIG" in str(raised.value)
  assert "does not exist" not in str(raised.value)


def test_missing_workdir_is_named():
  with pytest.raises(UserInputError, match="the directory /no/such/run does not exist"):
    translate.resolve_step("/no/such/run", "best", None)


def test_negative_step_is_rejected(tmp_path):
  with pytest.raises(UserInputError, match=r"must be a number \(0 or more\).*'-1'"):
    translate.resolve_step(str(tmp_path), "-1", 5)


@pytest.fixture(scope="module")
def image_translator():
  """An untrained 8x8 RGB translator: enough to check how images are read and written."""
  from configs import image_folders as image_folders_config

  config = image_folders_config.get_config()
  shape = (test_image_folders.SIZE, test_image_folders.SIZE, 3)
  networks = build_networks(config.model, shape, shape)
  state = steps.init_state(networks, config, shape, shape)
  return translate.Translator(networks, state.generator_params, state.generator_stats,
                              shape, shape, 0, config)


@pytest.mark.parametrize("inputs,direction,message", [
    (np.zeros((2, 8, 8, 3), np.float32), "ab", r"direction must be one of \('a2b', 'b2a'\)"),
    (np.zeros((2, 8, 8, 3), np.float32), "A->B", "direction must be one of"),
    (np.zeros((2, 16, 16, 3), np.float32), "a2b", r"shape \[N, 8, 8, 3\], got \(2, 16, 16, 3\)"),
    (np.zeros((2, 8, 8, 1), np.float32), "b2a", r"shape \[N, 8, 8, 3\]"),
    (np.zeros((8, 8, 3), np.float32), "a2b", r"got \(8, 8, 3\)"),
    (np.zeros((0, 8, 8, 3), np.float32), "a2b", "no rows"),
    (np.zeros((2, 8, 8, 3), np.uint8), "a2b", "must be floats in model range, got dtype uint8"),
    (np.full((2, 8, 8, 3), 255.0, np.float32), "a2b",
     r"must be in \[-1, 1\], got values from 255 to 255. Scale images in \[0, 255\] with"),
    (np.full((2, 8, 8, 3), 1.01, np.float32), "a2b",
     r"got values from 1.01 to 1.01. Scale or clip them to \[-1, 1\].$"),
    (np.full((2, 8, 8, 3), np.nan, np.float32), "a2b",
     "contain 384 values that are NaN or infinite"),
])
def test_translator_rejects_bad_inputs(image_translator, inputs, direction, message):
  with pytest.raises(UserInputError, match=message):
    image_translator(inputs, direction)


def test_translator_allows_rounding_past_the_range(image_translator):
  inputs = np.full((2, 8, 8, 3), 1.0005, np.float32)
  inputs[0] = -1.0005

  assert image_translator(inputs, "a2b")["translated"].shape == (2, 8, 8, 3)


def test_translator_accepts_bfloat16(image_translator):
  outputs = image_translator(jnp.zeros((2, 8, 8, 3), jnp.bfloat16), "a2b")

  assert outputs["translated"].shape == (2, 8, 8, 3)


def test_images_read_as_in_training(image_translator, tmp_path):
  readable = test_image_folders.write_mixed_folder(tmp_path / "in")
  written = translate.translate_path(image_translator, "a2b", str(tmp_path / "in"),
                                     str(tmp_path / "out"), with_reconstruction=False)

  # Files that do not decode, and hidden files, are skipped as in training.
  expected = [os.path.splitext(name)[0] + ".png" for name in readable]
  assert sorted(os.path.relpath(path, tmp_path / "out") for path in written) == expected
  for name in readable:
    decoded = test_image_folders.decode_one(tmp_path / "in" / name)
    expected_output = image_translator(decoded[None].astype(np.float32) / 127.5 - 1.0, "a2b")
    pixels = np.round((expected_output["translated"][0] + 1.0) * 127.5)
    path = tmp_path / "out" / (os.path.splitext(name)[0] + ".png")
    got = np.asarray(Image.open(path), np.float64)
    assert np.abs(got - pixels).max() <= 1.0, name


def test_fashion_mnist_images_are_padded_as_in_training(tmp_path):
  from configs import fashion_shoes_bags

  config = fashion_shoes_bags.get_config()
  shape = (32, 32, 1)
  networks = build_networks(config.model, shape, shape)
  state = steps.init_state(networks, config, shape, shape)
  translator = translate.Translator(networks, state.generator_params, state.generator_stats,
                                    shape, shape, 0, config)
  rng = np.random.default_rng(0)
  original = rng.integers(0, 256, (28, 28), np.uint8)  # as in Fashion-MNIST's files
  padded = rng.integers(0, 256, (32, 32), np.uint8)  # already padded by the user
  (tmp_path / "in").mkdir()
  Image.fromarray(original).save(tmp_path / "in" / "original.png")
  Image.fromarray(padded).save(tmp_path / "in" / "padded.png")

  translate.translate_path(translator, "a2b", str(tmp_path / "in"), str(tmp_path / "out"),
                           with_reconstruction=False)

  # Training pads the 28x28 images with 2 pixels of zeros on each side.
  expected_inputs = np.stack([np.pad(original, 2), padded])[..., None] / 127.5 - 1.0
  expected = translator(expected_inputs.astype(np.float32), "a2b")["translated"]
  for index, name in enumerate(("original.png", "padded.png")):
    got = np.asarray(Image.open(tmp_path / "out" / name), np.float64)
    assert np.abs(got - np.round((expected[index, ..., 0] + 1.0) * 127.5)).max() <= 1.0, name


def test_images_of_one_stem_keep_their_extensions(image_translator, tmp_path):
  folder = tmp_path / "in"
  folder.mkdir()
  pixels = np.full((8, 8, 3), 120, np.uint8)
  for name in ("x.png", "x.jpg", "y.jpeg"):
    Image.fromarray(pixels).save(folder / name)
  written = translate.translate_path(image_translator, "b2a", str(folder), str(tmp_path / "out"),
                                     with_reconstruction=True)
  names = sorted(os.path.relpath(path, tmp_path / "out") for path in written)
  assert names == ["reconstructions/x.jpg.png", "reconstructions/x.png.png",
                   "reconstructions/y.png", "x.jpg.png", "x.png.png", "y.png"]


def test_output_names_never_clash():
  assert translate.output_names(["a/x.png", "a/x.jpg", "y.jpeg"]) == [
      "a/x.png.png", "a/x.jpg.png", "y.png"]
  with pytest.raises(UserInputError, match=r"written as \['x.png.png'\]; rename them"):
    translate.output_names(["x.jpg", "x.png", "x.png.jpg"])


def test_unreadable_image_input_is_named(image_translator, tmp_path):
  (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a whole JPEG")
  with pytest.raises(UserInputError, match="broken.jpg is not a readable PNG, JPEG"):
    translate.translate_path(image_translator, "a2b", str(tmp_path / "broken.jpg"),
                             str(tmp_path / "out"), with_reconstruction=False)
  (tmp_path / "notes").mkdir()
  (tmp_path / "notes" / "a.txt").write_text("text")
  with pytest.raises(UserInputError, match="contains no readable images .* point --input at"):
    translate.translate_path(image_translator, "a2b", str(tmp_path / "notes"),
                             str(tmp_path / "out"), with_reconstruction=False)
  assert not os.path.exists(tmp_path / "out")


def test_other_files_lists_files_not_written(tmp_path):
  (tmp_path / "reconstructions").mkdir()
  for name in ("x.png", "y.png", "reconstructions/x.png"):
    (tmp_path / name).write_bytes(b"")

  others = translate.other_files(str(tmp_path), [str(tmp_path / "x.png")])

  assert others == ["reconstructions/x.png", "y.png"]
