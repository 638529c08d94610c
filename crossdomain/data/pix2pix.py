"""The pix2pix edges2shoes and edges2handbags archives through TFDS, read by index.

Each archive (edges2shoes.tar.gz, edges2handbags.tar.gz) contains 256x512 JPEGs,
the edge map on the left half and the photo on the right, in train/ and val/
folders. The TFDS builder here copies every JPEG unchanged into ArrayRecord
files, which support random access. The training pipeline then reads any
example by its index and decodes only the half it needs, so memory holds no
training images.

The builder reads an archive that the user put in the manual folder (TFDS
`manual_dir`, by default <tfds_data_dir>/downloads/manual) and otherwise
downloads it from the pix2pix datasets page.

NOTE: ArrayRecord needs the array_record package, which has wheels for Linux
only, and the reading relies on `DatasetBuilder.as_data_source` as TFDS
4.9.10 implements it.
"""

import os
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

from crossdomain.data import pipeline
from crossdomain.errors import UserInputError

DATASETS = ("edges2shoes", "edges2handbags")
HALVES = ("photo", "edges")  # the right and the left half of each JPEG
DOWNLOAD_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/"

# TFDS split names and the archive folders they are read from.
SPLIT_FOLDERS = {"train": "train", "validation": "val"}

# Errors of the download that mean the archive could not be fetched.
# Connection errors from requests are subclasses of OSError.
_DOWNLOAD_ERRORS = (OSError, tfds.download.DownloadError, NonMatchingChecksumError)

_JPEG_EXTENSIONS = (".jpg", ".jpeg")


class Pix2PixArchiveNotFoundError(FileNotFoundError):
  """Raised when a pix2pix archive is neither prepared, in the manual folder, nor downloadable."""


class _DownloadError(Exception):
  """Raised by the builder when the archive is not in the manual folder and its download failed.

  prepare_builder turns it into a Pix2PixArchiveNotFoundError that names the
  manual folder, which the builder does not know.
  """


def archive_name(dataset: str) -> str:
  """Return the file name of a dataset's archive, such as 'edges2shoes.tar.gz'."""
  return f"{dataset}.tar.gz"


class Pix2Pix(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """TFDS builder of the pix2pix edges2shoes and edges2handbags datasets.

  Each example is one original JPEG of the archive, stored unchanged, with
  its file name. Registration is skipped so that importing this module twice,
  or next to another builder of that name, cannot clash in the TFDS registry.
  """

  name = "pix2pix"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Original JPEGs of the train/ and val/ folders."}
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=dataset,
                              description=f"{dataset}: edge maps and photos side by side.")
      for dataset in DATASETS
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download edges2shoes.tar.gz or edges2handbags.tar.gz from "
      f"{DOWNLOAD_URL} and put it, not extracted, in the manual folder.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=("Pairs of a 256x256 edge map (left half) and a 256x256 photo "
                     "(right half) in one 256x512 JPEG."),
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "filename": tfds.features.Text(),
        }),
        homepage=DOWNLOAD_URL,
    )

  def _manual_archive(self, dl_manager: tfds.download.DownloadManager) -> str | None:
    """Return the path of the archive in the manual folder, or None if it is not there."""
    try:
      manual_dir = dl_manager.manual_dir
    except AssertionError:
      # TFDS 4.9.10 raises AssertionError when the manual folder is missing or empty.
      return None
    path = os.path.join(os.fspath(manual_dir), archive_name(self.builder_config.name))
    return path if os.path.isfile(path) else None

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Return the train and validation generators over the archive, downloading it if needed."""
    archive = self._manual_archive(dl_manager)
    if archive is None:
      try:
        archive = dl_manager.download(DOWNLOAD_URL + archive_name(self.builder_config.name))
      except _DOWNLOAD_ERRORS as error:
        raise _DownloadError() from error
    return {split: self._generate_examples(dl_manager.iter_archive(archive), folder, archive)
            for split, folder in SPLIT_FOLDERS.items()}

  def _generate_examples(self, archive_files: Iterator[tuple[str, BinaryIO]], folder: str,
                         archive: str):
    """Yield (path in archive, example) for each JPEG directly inside a `folder` folder."""
    count = 0
    try:
      for path, file in archive_files:
        parts = path.replace("\\", "/").split("/")
        if (len(parts) < 2 or parts[-2] != folder
            or not parts[-1].lower().endswith(_JPEG_EXTENSIONS)):
          continue
        count += 1
        # The path in the archive is a stable, unique key, so every preparation
        # stores the examples in the same order.
        yield path, {"image": file.read(), "filename": parts[-1]}
    except (tarfile.TarError, EOFError, OSError) as error:
      # tarfile lists one reason per compression method on separate lines.
      reason = " ".join(str(error).split())
      raise UserInputError(f"archive {archive} is not a readable tar.gz file "
                           f"({type(error).__name__}: {reason}); download it again") from error
    if not count:
      raise UserInputError(f"archive {archive} contains no JPEG files in a {folder}/ folder; "
                           f"expected the pix2pix layout, such as "
                           f"{self.builder_config.name}/{folder}/1_AB.jpg")


def default_manual_dir(builder: tfds.core.DatasetBuilder) -> str:
  """Return the manual folder TFDS uses when none is given: <data_dir>/downloads/manual."""
  return os.path.join(os.fspath(builder.data_dir_root), "downloads", "manual")


def _not_found_message(dataset: str, data_dir: str, manual_dir: str, error: Exception) -> str:
  return (
      f"pix2pix dataset {dataset} is not prepared in {data_dir}, its archive "
      f"{archive_name(dataset)} is not in {manual_dir}, and the download from "
      f"{DOWNLOAD_URL}{archive_name(dataset)} failed ({type(error).__name__}: {error}). "
      f"Download {archive_name(dataset)} from {DOWNLOAD_URL} and put it, not extracted, "
      f"in {manual_dir}, or set --config.data.manual_dir to the folder that contains it.")


def prepare_builder(dataset: str, *, manual_dir: str | os.PathLike | None = None,
                    tfds_data_dir: str | os.PathLike | None = None) -> Pix2Pix:
  """Prepare a pix2pix dataset in ArrayRecord format if needed and return its builder.

  A dataset already prepared in tfds_data_dir is reused as it is. Otherwise
  the archive is read from manual_dir, or downloaded when it is not there.
  Preparing reads the archive twice, once per split, and stores about as
  many bytes as the archive holds.

  Args:
    dataset: "edges2shoes" or "edges2handbags".
    manual_dir: folder that contains the downloaded archive, which is then
      never downloaded; None for <tfds_data_dir>/downloads/manual, with a
      download when the archive is not there.
    tfds_data_dir: TFDS data directory; None for the TFDS default
      (TFDS_DATA_DIR if set, otherwise ~/tensorflow_datasets).

  Returns:
    A prepared builder whose splits are "train" and "validation".

  Raises:
    UserInputError: dataset is not one of DATASETS, or the archive has no
      JPEGs in the expected folders.
    Pix2PixArchiveNotFoundError: the archive is not in the given manual_dir,
      or not in the default one and the download failed.
  """
  if dataset not in DATASETS:
    raise UserInputError(f"unknown pix2pix dataset {dataset!r}; expected one of {DATASETS}")
  builder = Pix2Pix(config=dataset, data_dir=tfds_data_dir, file_format="array_record")
  if builder.is_prepared():
    return builder

  # NOTE: processes that share tfds_data_dir on a network disk would all
  # prepare the dataset at once, so prepare it with one process first.
  if manual_dir is None:
    manual_dir = default_manual_dir(builder)
  elif not os.path.isfile(os.path.join(manual_dir, archive_name(dataset))):
    # A folder the user named is where the archive should be: no download.
    raise Pix2PixArchiveNotFoundError(
        f"{archive_name(dataset)} is not in {manual_dir}, the folder that data.manual_dir "
        "names; put the archive there, or leave data.manual_dir unset to download it")
  manual_dir = os.fspath(manual_dir)
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
  try:
    builder.download_and_prepare(download_config=download_config)
  except _DownloadError as error:
    cause = error.__cause__
    raise Pix2PixArchiveNotFoundError(
        _not_found_message(dataset, os.fspath(builder.data_dir_root), manual_dir, cause)
    ) from cause
  return builder


class Pix2PixImages(pipeline.FileSource):
  """One half of the JPEGs of a prepared split, read by index and resized.

  Example i is record `record_indices[i]` of the split, so a domain can use a
  subset of the records. The records are read in the tf.data graph through
  tf.numpy_function, one call per batch. TensorFlow then decodes only the
  chosen half of each JPEG.
  """

  def __init__(self, builder: tfds.core.DatasetBuilder, split: str, half: str, image_size: int,
               record_indices: np.ndarray | None = None):
    """Create a source over one half of a prepared split.

    Args:
      builder: a prepared builder from `prepare_builder`.
      split: "train" or "validation".
      half: "photo" (right half) or "edges" (left half).
      image_size: side of each example in pixels.
      record_indices: which records of the split, in order; None for all.
    """
    if half not in HALVES:
      raise UserInputError(f"config.data.half_a and half_b must be one of {HALVES}, "
                           f"got {half!r}")
    self._records = builder.as_data_source(
        split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    self._features = builder.info.features
    if record_indices is None:
      record_indices = np.arange(len(self._records))
    self.record_indices = np.asarray(record_indices, np.int64)
    self._record_index_table = tf.constant(self.record_indices)
    self.half = half
    self.image_size = image_size

  def __len__(self) -> int:
    return len(self.record_indices)

  @property
  def example_shape(self) -> tuple[int, ...]:
    return (self.image_size, self.image_size, 3)

  def _read_records(self, record_indices: np.ndarray) -> np.ndarray:
    return np.array(self._records.__getitems__(record_indices.tolist()), dtype=object)

  def fetch(self, indices: tf.Tensor) -> tf.Tensor:
    """Return the serialized records of examples `indices`, string [n]."""
    record_indices = tf.gather(self._record_index_table, indices)
    records = tf.numpy_function(self._read_records, [record_indices], tf.string, stateful=False)
    return tf.ensure_shape(records, [None])

  def decode(self, stored: tf.Tensor) -> tf.Tensor:
    """Decode the chosen half of one record's JPEG into uint8 [size, size, 3]."""
    example = self._features.deserialize_example(
        stored, decoders={"image": tfds.decode.SkipDecoding()})
    return decode_half(example["image"], self.half, self.image_size)


def decode_half(jpeg: tf.Tensor, half: str, image_size: int) -> tf.Tensor:
  """Decode the left ("edges") or right ("photo") half of a JPEG, center-cropped and resized.

  Args:
    jpeg: string scalar, an encoded JPEG of two images side by side.
    half: "photo" or "edges".
    image_size: side of the output in pixels.

  Returns:
    uint8 [image_size, image_size, 3].
  """
  shape = tf.io.extract_jpeg_shape(jpeg)
  height, half_width = shape[0], shape[1] // 2
  left = half_width if half == "photo" else 0
  # Decoding only the window skips the other half, and decoding at reduced
  # scale does most of the resizing.
  image = pipeline.decode_jpeg_window(jpeg, tf.stack([0, left, height, half_width]), image_size)
  return pipeline.center_crop_and_resize(image, image_size)


class DomainSources(NamedTuple):
  """A pix2pix domain: training examples read from disk and held-out images in memory.

  Attributes:
    train: the training examples.
    test: uint8 [N, size, size, 3], at most max_test_examples validation images.
  """

  train: Pix2PixImages
  test: np.ndarray


def _split_in_two(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Deal the indices 0..count-1 into two disjoint halves chosen by the seed."""
  order = np.random.default_rng(seed).permutation(count)
  return np.sort(order[:count // 2]), np.sort(order[count // 2:])


def load_domains(datasets: tuple[str, str], halves: tuple[str, str], *, image_size: int,
                 max_test_examples: int, seed: int,
                 manual_dir: str | os.PathLike | None = None,
                 tfds_data_dir: str | os.PathLike | None = None,
                 ) -> tuple[DomainSources, DomainSources]:
  """Load domains A and B, each one half of a pix2pix dataset, preparing them if needed.

  When both domains come from the same dataset, the records of each split
  are dealt into two disjoint halves, one per domain, so that no image of A
  has its counterpart in B.

  Args:
    datasets: the dataset of A and of B, each in DATASETS.
    halves: the half of A and of B, each in HALVES.
    image_size: side of each example in pixels.
    max_test_examples: cap on the held-out images kept in memory per domain.
    seed: picks the halves when both domains share a dataset.
    manual_dir, tfds_data_dir: see prepare_builder.

  Returns:
    The sources of A and of B.
  """
  builders, missing = {}, []
  for dataset in sorted(set(datasets)):
    try:
      builders[dataset] = prepare_builder(dataset, manual_dir=manual_dir,
                                          tfds_data_dir=tfds_data_dir)
    except Pix2PixArchiveNotFoundError as error:
      missing.append(str(error))  # so that the message names every missing archive
  if missing:
    raise Pix2PixArchiveNotFoundError("\n".join(missing))
  shared = datasets[0] == datasets[1]
  record_indices = {}
  for split in SPLIT_FOLDERS:
    if shared:
      count = builders[datasets[0]].info.splits[split].num_examples
      record_indices[split] = _split_in_two(count, seed)
    else:
      record_indices[split] = (None, None)

  domains = []
  for domain, (dataset, half) in enumerate(zip(datasets, halves)):
    builder = builders[dataset]
    train = Pix2PixImages(builder, "train", half, image_size, record_indices["train"][domain])
    held_out = Pix2PixImages(builder, "validation", half, image_size,
                             record_indices["validation"][domain])
    count = min(len(held_out), max_test_examples)
    domains.append(DomainSources(train, pipeline.decode_examples(held_out, np.arange(count))))
  return domains[0], domains[1]
