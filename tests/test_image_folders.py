"""Tests for crossdomain.data.image_folders and the image_folders data source."""

import logging

import numpy as np
import pytest
from PIL import Image

from configs import image_folders as image_folders_config
from crossdomain import data as data_lib
from crossdomain.data import image_folders, pipeline
from crossdomain.errors import UserInputError

SIZE = 8


def write_mixed_folder(folder):
  """Write images in the modes RGB, L, RGBA and P, plus files that are not images.

  Returns:
    The relative paths of the readable images, in sorted order.
  """
  (folder / "nested" / "deeper").mkdir(parents=True)
  Image.fromarray(np.full((SIZE, SIZE, 3), (200, 30, 60), np.uint8)).save(folder / "rgb.jpg",
                                                                          quality=100)
  Image.fromarray(np.full((SIZE, SIZE), 90, np.uint8)).save(folder / "nested" / "gray.png")
  rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
  rgba[..., 0] = 255  # red, but fully transparent: composited over white
  Image.fromarray(rgba, "RGBA").save(folder / "nested" / "deeper" / "clear.png")
  palette = Image.new("P", (SIZE, SIZE), 1)
  palette.putpalette([0, 0, 0, 10, 220, 40] + [0] * 762)
  palette.save(folder / "palette.png")

  # A JPEG cut in half, a text file and a PNG signature with nothing after it.
  big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
  Image.fromarray(big).save(folder / "whole.jpg")
  content = (folder / "whole.jpg").read_bytes()
  (folder / "whole.jpg").unlink()
  (folder / "truncated.jpg").write_bytes(content[:len(content) // 2])
  (folder / "notes.txt").write_text("not an image")
  (folder / "nested" / "empty.png").write_bytes(b"\x89PNG\r\n\x1a\n")
  # Hidden files are left out without a warning.
  (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
  return ["nested/deeper/clear.png", "nested/gray.png", "palette.png", "rgb.jpg"]


def write_color_folder(folder, count, size=16):
  """Write `count` flat RGB PNGs whose red channel is 2 * (their index)."""
  folder.mkdir()
  for index in range(count):
    pixels = np.full((size, size, 3), (2 * index, 100, 50), np.uint8)
    Image.fromarray(pixels).save(folder / f"{index:03d}.png")
  return folder


def decode_one(path, image_size=SIZE, channels=3):
  source = image_folders.ImageFiles([str(path)], image_size, channels)
  return pipeline.decode_examples(source)[0]


def folders_config(folder_a, folder_b, image_size=SIZE):
  config = image_folders_config.get_config().data
  config.folder_a = str(folder_a)
  config.folder_b = str(folder_b)
  config.image_size = image_size
  config.test_fraction = 0.25
  return config


def tiny_run_config(tmp_path):
  """Return a run config of two 32-image folders under tmp_path, 8x8, evaluated at step 2."""
  config = image_folders_config.get_config()
  config.data = folders_config(write_color_folder(tmp_path / "a", 32),
                               write_color_folder(tmp_path / "b", 32), image_size=8)
  config.data.batch_size = 8
  config.update({"num_steps": 2, "log_every": 1, "sample_every": 100, "checkpoint_every": 2})
  config.eval.update({"every": 2, "evaluator_steps": 2, "max_examples": 8,
                      "evaluator_dir": str(tmp_path / "evaluators")})
  return config


def test_find_images_skips_and_logs_bad_files(tmp_path, caplog):
  readable = write_mixed_folder(tmp_path)
  with caplog.at_level(logging.WARNING):
    paths = list(image_folders.find_images(str(tmp_path), SIZE, 3))
  assert paths == [str(tmp_path / name) for name in readable]

  warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
  assert len(warnings) == 1
  assert warnings[0].startswith(f"Skipped 3 files that are not readable images in {tmp_path}: ")
  for name in ("truncated.jpg", "notes.txt", "nested/empty.png"):
    assert name in warnings[0]
  assert ".DS_Store" not in warnings[0]

  (tmp_path / "truncated.jpg").unlink()
  (tmp_path / "notes.txt").unlink()
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    image_folders.find_images(str(tmp_path), SIZE, 3)
  assert (f"Skipped 1 file that is not a readable image in {tmp_path}: nested/empty.png"
          in caplog.text)


def test_image_modes_become_rgb(tmp_path):
  write_mixed_folder(tmp_path)
  rgb = decode_one(tmp_path / "rgb.jpg")
  assert rgb.shape == (SIZE, SIZE, 3)
  assert rgb.dtype == np.uint8
  assert np.abs(rgb[4, 4].astype(int) - (200, 30, 60)).max() <= 3
  assert decode_one(tmp_path / "nested" / "gray.png")[4, 4].tolist() == [90, 90, 90]
  assert decode_one(tmp_path / "nested" / "deeper" / "clear.png")[4, 4].tolist() == [255, 255, 255]
  assert decode_one(tmp_path / "palette.png")[4, 4].tolist() == [10, 220, 40]


def test_images_convert_to_grayscale(tmp_path):
  write_mixed_folder(tmp_path)
  gray = decode_one(tmp_path / "palette.png", channels=1)
  assert gray.shape == (SIZE, SIZE, 1)
  # Luma of (10, 220, 40) with the BT.601 weights 0.299, 0.587 and 0.114.
  assert gray[4, 4, 0] == round(0.299 * 10 + 0.587 * 220 + 0.114 * 40)
  assert decode_one(tmp_path / "nested" / "gray.png", channels=1)[4, 4, 0] == 90


@pytest.mark.parametrize("extension", ["png", "jpg"])
def test_images_are_center_cropped_and_resized(tmp_path, extension):
  # 80 wide and 40 high: the centered 40x40 square is blue, the sides red.
  pixels = np.zeros((40, 80, 3), np.uint8)
  pixels[:, :20] = (255, 0, 0)
  pixels[:, 60:] = (255, 0, 0)
  pixels[:, 20:60] = (0, 0, 255)
  Image.fromarray(pixels).save(tmp_path / f"wide.{extension}")
  image = decode_one(tmp_path / f"wide.{extension}", image_size=5)
  assert image.shape == (5, 5, 3)
  # JPEG blurs colors across the edges of its 16x16 chroma blocks, so only
  # the inner pixels are compared.
  tolerance = 0 if extension == "png" else 24
  assert np.abs(image[1:4, 1:4].astype(int) - (0, 0, 255)).max() <= tolerance


def test_missing_folder_raises(tmp_path):
  with pytest.raises(image_folders.ImageFolderNotFoundError, match=str(tmp_path / "absent")):
    image_folders.find_images(str(tmp_path / "absent"), SIZE, 3)


def test_folder_without_images_raises(tmp_path):
  (tmp_path / "notes.txt").write_text("not an image")
  with pytest.raises(UserInputError, match=f"image folder {tmp_path} contains no readable images"):
    image_folders.find_images(str(tmp_path), SIZE, 3)
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(UserInputError, match=f"image folder {empty} contains no readable images"):
    image_folders.find_images(str(empty), SIZE, 3)


def test_invalid_channels_raises():
  with pytest.raises(UserInputError, match="config.data.channels must be 1 or 3, got 4"):
    image_folders.ImageFiles([], SIZE, 4)


def test_load_image_folders_holds_out_by_seed(tmp_path):
  folder_a = write_color_folder(tmp_path / "a", 12)
  folder_b = write_color_folder(tmp_path / "b", 8)
  config = folders_config(folder_a, folder_b)
  domains = data_lib.load(config, seed=1)

  assert domains.is_image
  assert isinstance(domains.a.train, pipeline.FileSource)
  assert domains.a.example_shape == (SIZE, SIZE, 3)
  assert (domains.a.num_train, len(domains.a.test)) == (9, 3)
  assert (domains.b.num_train, len(domains.b.test)) == (6, 2)
  assert domains.a.test.dtype == np.uint8
  assert domains.a.test.shape == (3, SIZE, SIZE, 3)
  assert domains.a.train_labels.tolist() == [0] * 9
  assert domains.a.test_labels.tolist() == [0] * 3

  # Held-out and training images are disjoint and together make the folder.
  train_names = [path.rsplit("/", 1)[-1] for path in domains.a.train.paths]
  test_reds = sorted(int(image[0, 0, 0]) for image in domains.a.test)
  test_names = [f"{red // 2:03d}.png" for red in test_reds]
  assert sorted(train_names + test_names) == [f"{index:03d}.png" for index in range(12)]

  again = data_lib.load(config, seed=1)
  assert again.a.train.paths == domains.a.train.paths
  np.testing.assert_array_equal(again.a.test, domains.a.test)
  other_seed = data_lib.load(config, seed=2)
  assert other_seed.a.train.paths != domains.a.train.paths


def test_held_out_set_is_capped(tmp_path):
  config = folders_config(write_color_folder(tmp_path / "a", 12),
                          write_color_folder(tmp_path / "b", 12))
  config.test_fraction = 0.5
  config.max_test_examples = 2
  domains = data_lib.load(config, seed=0)
  assert (domains.a.num_train, len(domains.a.test)) == (10, 2)


def test_folder_with_one_image_raises(tmp_path):
  config = folders_config(write_color_folder(tmp_path / "a", 1),
                          write_color_folder(tmp_path / "b", 4))
  with pytest.raises(UserInputError, match=r"has too few examples \(1\) to hold out 1"):
    data_lib.load(config, seed=0)


def test_unset_folder_raises():
  config = image_folders_config.get_config().data
  with pytest.raises(UserInputError, match="config.data.folder_a is not set"):
    data_lib.load(config, seed=0)


def test_folder_batches_are_images_in_model_range(tmp_path):
  config = folders_config(write_color_folder(tmp_path / "a", 10),
                          write_color_folder(tmp_path / "b", 10))
  config.channels = 1
  domains = data_lib.load(config, seed=0)
  dataset = pipeline.train_batches(domains.a.train, domains.b.train, 4, 0, 0)
  batch_a, batch_b = next(dataset.as_numpy_iterator())
  assert batch_a.shape == (4, SIZE, SIZE, 1)
  assert batch_b.shape == (4, SIZE, SIZE, 1)
  assert batch_a.dtype == np.float32
  assert -1.0 <= batch_a.min() <= batch_a.max() <= 1.0


@pytest.mark.parametrize("size", [0, 4, 48])
def test_invalid_image_size_raises(tmp_path, size):
  config = folders_config(str(tmp_path / "absent_a"), str(tmp_path / "absent_b"), image_size=size)
  # The size is checked before the folders are read.
  with pytest.raises(UserInputError, match="config.data.image_size must be a power of two of "
                                           f"at least 8, such as 32 or 64, got {size}"):
    data_lib.load(config, seed=0)


def test_missing_folder_names_its_field(tmp_path):
  config = folders_config(write_color_folder(tmp_path / "a", 4), str(tmp_path / "absent"))
  with pytest.raises(image_folders.ImageFolderNotFoundError, match="check data.folder_b$"):
    data_lib.load(config, seed=0)


def test_contents_follow_files_not_places(tmp_path):
  config = folders_config(write_color_folder(tmp_path / "a", 8),
                          write_color_folder(tmp_path / "b", 8))
  contents = data_lib.load(config, seed=0).contents
  assert contents.startswith("8 and 8 images, sha256 ")

  (tmp_path / "a").rename(tmp_path / "moved")
  config.folder_a = str(tmp_path / "moved")
  assert data_lib.load(config, seed=0).contents == contents

  # Other pixels in a file of the same name and size.
  first = tmp_path / "moved" / "000.png"
  size = first.stat().st_size
  Image.fromarray(np.full((16, 16, 3), (1, 100, 50), np.uint8)).save(first)
  assert first.stat().st_size == size
  changed = data_lib.load(config, seed=0).contents
  assert changed.startswith("8 and 8 images, sha256 ")
  assert changed != contents

  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "moved" / "extra.png")
  assert data_lib.load(config, seed=0).contents.startswith("9 and 8 images, sha256 ")


def test_small_folders_report_all_problems(tmp_path):
  from crossdomain import train

  config = image_folders_config.get_config()
  config.data = folders_config(write_color_folder(tmp_path / "a", 12),
                               write_color_folder(tmp_path / "b", 12), image_size=8)
  config.data.batch_size = 16

  # 12 images with a test fraction of 0.25 leave 9 to train on and 3 held out.
  with pytest.raises(UserInputError) as error:
    train.train_and_evaluate(config, str(tmp_path / "run"))

  problems = str(error.value).split(". Also, ")
  assert problems[0] == ("data.batch_size 16 is larger than domain A's 9 training examples; "
                         "lower data.batch_size to 9 or less")
  assert problems[2].startswith("domain A has 3 held-out images for evaluation")
  assert len(problems) == 4


@pytest.mark.parametrize("size,warned", [(8, True), (16, False)])
def test_feature_matching_at_8x8_warns(size, warned, caplog):
  import types

  from crossdomain import train

  config = image_folders_config.get_config()
  domain = types.SimpleNamespace(example_shape=(size, size, 3))
  domains = types.SimpleNamespace(is_image=True, a=domain, b=domain)
  with caplog.at_level(logging.WARNING):
    train._warn_if_nothing_to_match(config, domains)
  assert ("Feature matching has nothing to match at 8x8" in caplog.text) == warned
