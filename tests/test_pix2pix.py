"""Tests for crossdomain.data.pix2pix on tiny archives in the published format.

Each archive is a tar.gz of 256x512 JPEGs in <dataset>/train/ and
<dataset>/val/, the edge map on the left half and the photo on the right.
Nothing is downloaded: the archives lie in the manual folder, and where a
test needs the download, DownloadManager.download is replaced.
"""

import io
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from configs import shoes_bags
from crossdomain import data as data_lib
from crossdomain.data import pipeline, pix2pix
from crossdomain.errors import UserInputError

NUM_TRAIN = 6
NUM_VAL = 3
EDGE_VALUE = 255  # the left half is white around a black square


def photo_color(dataset, folder, index):
  """The flat RGB color of the photo half of one archive image."""
  base = 40 if dataset == "edges2shoes" else 140
  offset = 0 if folder == "train" else 60
  return (base + 10 * index, offset + 30, 200 - 20 * index)


def write_archive(path, dataset, num_train=NUM_TRAIN, num_val=NUM_VAL,
                  layout="{dataset}/{folder}"):
  """Write a pix2pix-style archive whose photo halves have the colors of photo_color."""
  with tarfile.open(path, "w:gz") as archive:
    for folder, count in (("train", num_train), ("val", num_val)):
      for index in range(count):
        image = np.empty((256, 512, 3), np.uint8)
        image[:, :256] = EDGE_VALUE
        image[96:160, 96:160] = 0  # a dark square in the middle of the edge map
        image[:, 256:] = photo_color(dataset, folder, index)
        encoded = io.BytesIO()
        Image.fromarray(image).save(encoded, "JPEG", quality=95)
        member_folder = layout.format(dataset=dataset, folder=folder)
        member = tarfile.TarInfo(f"{member_folder}/{index + 1}_AB.jpg")
        member.size = encoded.tell()
        encoded.seek(0)
        archive.addfile(member, encoded)
  return path


def fail_download(error):
  def download(self, url_or_urls):
    raise error

  return download


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("manual")
  for dataset in pix2pix.DATASETS:
    write_archive(folder / pix2pix.archive_name(dataset), dataset)
  return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, manual_dir):
  """A TFDS data directory in which both datasets are prepared from manual_dir."""
  folder = tmp_path_factory.mktemp("tfds")
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(tfds.download.DownloadManager, "download",
                  fail_download(AssertionError("the archive was downloaded")))
    for dataset in pix2pix.DATASETS:
      pix2pix.prepare_builder(dataset, manual_dir=manual_dir, tfds_data_dir=folder)
  return folder


def shoes_bags_config(manual_dir, data_dir, image_size=32):
  config = shoes_bags.get_config().data
  config.image_size = image_size
  config.max_test_examples = 2
  config.manual_dir = str(manual_dir)
  config.tfds_data_dir = str(data_dir)
  return config


def test_prepare_reads_manual_archive(data_dir):
  builder = pix2pix.prepare_builder("edges2shoes", tfds_data_dir=data_dir)
  assert builder.info.splits["train"].num_examples == NUM_TRAIN
  assert builder.info.splits["validation"].num_examples == NUM_VAL


def test_prepared_dataset_is_reused(data_dir, monkeypatch):
  def fail_if_called(*args, **kwargs):
    raise AssertionError("the dataset was prepared again")

  monkeypatch.setattr(pix2pix.Pix2Pix, "download_and_prepare", fail_if_called)
  builder = pix2pix.prepare_builder("edges2handbags", manual_dir="/nonexistent",
                                    tfds_data_dir=data_dir)
  assert builder.is_prepared()


def test_builder_stores_original_jpegs(data_dir, manual_dir):
  with tarfile.open(manual_dir / "edges2shoes.tar.gz") as archive:
    originals = {member.name.rsplit("/", 1)[-1]: archive.extractfile(member).read()
                 for member in archive.getmembers() if "/train/" in member.name}
  builder = pix2pix.prepare_builder("edges2shoes", tfds_data_dir=data_dir)
  records = builder.as_data_source("train", decoders={"image": tfds.decode.SkipDecoding()})
  stored = {record["filename"].decode(): record["image"] for record in records}
  assert sorted(stored) == sorted(originals)
  for name, jpeg in originals.items():
    assert stored[name] == jpeg, name


def test_photo_and_edge_halves(data_dir):
  builder = pix2pix.prepare_builder("edges2shoes", tfds_data_dir=data_dir)
  photos = pipeline.decode_examples(pix2pix.Pix2PixImages(builder, "validation", "photo", 16))
  edges = pipeline.decode_examples(pix2pix.Pix2PixImages(builder, "validation", "edges", 16))
  assert photos.shape == (NUM_VAL, 16, 16, 3)
  assert photos.dtype == np.uint8

  expected = {photo_color("edges2shoes", "val", index) for index in range(NUM_VAL)}
  found = {tuple(image[8, 8].tolist()) for image in photos}
  for color in expected:
    assert any(np.abs(np.subtract(color, other)).max() <= 6 for other in found), (color, found)
  # Edge maps are white at the border and dark in the center.
  assert edges[:, 0, 0].min() >= EDGE_VALUE - 6
  assert edges[:, 7:9, 7:9].max() <= 6


def test_given_manual_folder_without_archive_is_not_downloaded(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds.download.DownloadManager, "download",
                      fail_download(AssertionError("downloaded although manual_dir was given")))
  manual = tmp_path / "archives"
  with pytest.raises(pix2pix.Pix2PixArchiveNotFoundError) as raised:
    pix2pix.prepare_builder("edges2handbags", manual_dir=manual, tfds_data_dir=tmp_path / "tfds")
  message = str(raised.value)
  assert f"edges2handbags.tar.gz is not in {manual}, the folder that data.manual_dir names" in (
      message)
  assert "leave data.manual_dir unset to download it" in message


def test_every_missing_archive_is_named(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds.download.DownloadManager, "download",
                      fail_download(AssertionError("downloaded although manual_dir was given")))
  manual = tmp_path / "archives"

  with pytest.raises(pix2pix.Pix2PixArchiveNotFoundError) as raised:
    pix2pix.load_domains(("edges2shoes", "edges2handbags"), ("photo", "photo"), image_size=8,
                         max_test_examples=4, seed=0, manual_dir=manual,
                         tfds_data_dir=tmp_path / "tfds")

  assert f"edges2shoes.tar.gz is not in {manual}" in str(raised.value)
  assert f"edges2handbags.tar.gz is not in {manual}" in str(raised.value)


def test_offline_default_manual_folder_is_in_data_dir(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds.download.DownloadManager, "download",
                      fail_download(OSError("network is unreachable")))
  with pytest.raises(pix2pix.Pix2PixArchiveNotFoundError, match="downloads/manual"):
    pix2pix.prepare_builder("edges2shoes", tfds_data_dir=tmp_path / "tfds")


def test_download_uses_published_address(tmp_path, monkeypatch):
  archive = write_archive(tmp_path / "downloaded.tar.gz", "edges2shoes", num_train=2, num_val=1)
  requested = []

  def download(self, url):
    requested.append(url)
    return archive

  monkeypatch.setattr(tfds.download.DownloadManager, "download", download)
  builder = pix2pix.prepare_builder("edges2shoes", tfds_data_dir=tmp_path / "tfds")
  assert requested == [pix2pix.DOWNLOAD_URL + "edges2shoes.tar.gz"]
  assert requested[0] == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/edges2shoes.tar.gz"
  assert builder.info.splits["train"].num_examples == 2


def test_archive_without_split_folders_raises(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  write_archive(manual / "edges2shoes.tar.gz", "edges2shoes", layout="{dataset}/images")
  with pytest.raises(UserInputError, match="no JPEG files in a train/ folder"):
    pix2pix.prepare_builder("edges2shoes", manual_dir=manual, tfds_data_dir=tmp_path / "tfds")


def test_unknown_dataset_and_half_raise(data_dir):
  with pytest.raises(UserInputError, match="unknown pix2pix dataset 'edges2cats'"):
    pix2pix.prepare_builder("edges2cats", tfds_data_dir=data_dir)
  builder = pix2pix.prepare_builder("edges2shoes", tfds_data_dir=data_dir)
  with pytest.raises(UserInputError, match="config.data.half_a and half_b must be one of"):
    pix2pix.Pix2PixImages(builder, "train", "left", 16)


def test_load_shoes_bags_config(manual_dir, data_dir):
  domains = data_lib.load(shoes_bags_config(manual_dir, data_dir), seed=0)
  assert domains.is_image
  for domain in (domains.a, domains.b):
    assert isinstance(domain.train, pipeline.FileSource)
    assert domain.example_shape == (32, 32, 3)
    assert domain.num_train == NUM_TRAIN
    assert domain.test.shape == (2, 32, 32, 3)
    assert domain.test.dtype == np.uint8
    assert domain.train_labels.tolist() == [0] * NUM_TRAIN
    assert domain.test_labels.tolist() == [0, 0]
  # A contains shoe photos and B bag photos, which differ in their blue channel.
  shoe_blues = {200 - 20 * index for index in range(NUM_VAL)}
  assert all(min(abs(int(image[16, 16, 2]) - blue) for blue in shoe_blues) <= 6
             for image in domains.a.test)


def test_one_dataset_for_both_domains_is_split(manual_dir, data_dir):
  config = shoes_bags_config(manual_dir, data_dir)
  config.dataset_b = "edges2shoes"
  config.half_b = "edges"
  domains = data_lib.load(config, seed=3)
  indices_a = domains.a.train.record_indices.tolist()
  indices_b = domains.b.train.record_indices.tolist()
  assert not set(indices_a) & set(indices_b)
  assert sorted(indices_a + indices_b) == list(range(NUM_TRAIN))
  assert len(domains.a.test) + len(domains.b.test) == NUM_VAL
  # The split is a function of the seed.
  again = data_lib.load(config, seed=3)
  assert again.a.train.record_indices.tolist() == indices_a


def test_pix2pix_batches_resume_where_they_stopped(manual_dir, data_dir):
  domains = data_lib.load(shoes_bags_config(manual_dir, data_dir, image_size=8), seed=0)

  def steps(start_step, count):
    dataset = pipeline.train_batches(domains.a.train, domains.b.train, 4, 7, start_step)
    return [(a.tolist(), b.tolist()) for a, b in dataset.take(count).as_numpy_iterator()]

  uninterrupted = steps(0, 5)
  assert steps(3, 2) == uninterrupted[3:]
  batch_a = np.array(uninterrupted[0][0])
  assert batch_a.shape == (4, 8, 8, 3)
  assert batch_a.min() >= -1.0
  assert batch_a.max() <= 1.0


def test_truncated_archive_raises(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  whole = write_archive(tmp_path / "whole.tar.gz", "edges2shoes")
  content = whole.read_bytes()
  (manual / "edges2shoes.tar.gz").write_bytes(content[:len(content) // 2])
  with pytest.raises(UserInputError, match="is not a readable tar.gz file"):
    pix2pix.prepare_builder("edges2shoes", manual_dir=manual, tfds_data_dir=tmp_path / "tfds")


def test_archive_of_text_is_reported_on_one_line(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "edges2shoes.tar.gz").write_text("not an archive\n")
  with pytest.raises(UserInputError, match="is not a readable tar.gz file") as raised:
    pix2pix.prepare_builder("edges2shoes", manual_dir=manual, tfds_data_dir=tmp_path / "tfds")
  assert "\n" not in str(raised.value)
