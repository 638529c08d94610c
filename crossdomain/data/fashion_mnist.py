"""Fashion-MNIST through TFDS, and its shoes and bags domains for DiscoGAN.

TFDS prepares the dataset from local IDX files when a folder contains all four
of them, for example the folder that Debian's `dataset-fashion-mnist` package
installs. The stock TFDS builder rejects those files because Debian re-gzipped
them, so their checksums differ even though the decompressed content is the
same. Without local files, the stock builder downloads the dataset as usual.
"""

import gzip
import os
from typing import NamedTuple

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from tensorflow_datasets.core.download.download_manager import (
    NonMatchingChecksumError,
)

DEFAULT_LOCAL_DIR = "/usr/share/datasets/fashion-mnist"

# File names as published by Zalando and as installed by Debian.
TRAIN_IMAGES_FILENAME = "train-images-idx3-ubyte.gz"
TRAIN_LABELS_FILENAME = "train-labels-idx1-ubyte.gz"
TEST_IMAGES_FILENAME = "t10k-images-idx3-ubyte.gz"
TEST_LABELS_FILENAME = "t10k-labels-idx1-ubyte.gz"
IDX_FILENAMES = (
    TRAIN_IMAGES_FILENAME,
    TRAIN_LABELS_FILENAME,
    TEST_IMAGES_FILENAME,
    TEST_LABELS_FILENAME,
)

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
SHOE_CLASSES = (5, 7, 9)  # Sandal, Sneaker, Ankle boot.
BAG_CLASS = 8

SPLITS = ("train", "test")
IMAGE_SIZE = 28
PADDING = 2  # Pixels of zeros on each side: 28x28 images become 32x32.

_READ_BATCH_SIZE = 10_000  # Examples per batch when load_split reads a split.

# IDX magic numbers: two zero bytes, the type code 0x08 (unsigned byte) and the
# number of dimensions.
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801

# Errors of the stock builder's download that mean the files could not be
# fetched. Connection errors from requests are subclasses of OSError.
_DOWNLOAD_ERRORS = (OSError, tfds.download.DownloadError, NonMatchingChecksumError)


class FashionMnistNotFoundError(FileNotFoundError):
  """Raised when the Fashion-MNIST files are missing and the dataset is not prepared.

  Either the local folder contains only some of the four IDX files, or it
  contains none and the TFDS download failed.
  """


class Domains(NamedTuple):
  """Shoes (domain A) and bags (domain B) of one split, zero-padded to 32x32.

  Attributes:
    images_a: uint8 [Na, 32, 32, 1], the shoe images.
    labels_a: int64 [Na], the original Fashion-MNIST class of each shoe
      (one of SHOE_CLASSES).
    images_b: uint8 [Nb, 32, 32, 1], the bag images.
  """

  images_a: np.ndarray
  labels_a: np.ndarray
  images_b: np.ndarray


class LocalFashionMNIST(
    tfds.image_classification.FashionMNIST, skip_registration=True
):
  """TFDS builder of `fashion_mnist` that reads the IDX files from a local folder.

  The name, version, features and splits are those of the stock builder, so a
  plain `tfds.builder('fashion_mnist', data_dir=...)` reads what this builder
  prepares. Registration is skipped because the stock builder already owns
  the name `fashion_mnist` in the TFDS registry.
  """

  name = "fashion_mnist"

  def __init__(self, *, local_dir: str | os.PathLike, **kwargs):
    """Create a builder that reads the IDX files in local_dir.

    Args:
      local_dir: folder that contains the four IDX files (IDX_FILENAMES).
      **kwargs: passed to the stock builder, e.g. `data_dir`.
    """
    self._local_dir = os.fspath(local_dir)
    super().__init__(**kwargs)
    # DatasetBuilder.__setstate__ rebuilds the builder from this dict.
    self._original_state["local_dir"] = self._local_dir

  def _split_generators(self, dl_manager):
    """Return the train and test generators over the local files, without any download."""
    del dl_manager  # Nothing to download or extract.
    missing = missing_local_files(self._local_dir)
    if missing:
      raise FashionMnistNotFoundError(
          _missing_files_message(self._local_dir, missing)
      )

    def path(filename):
      return os.path.join(self._local_dir, filename)

    return [
        tfds.core.SplitGenerator(
            name=tfds.Split.TRAIN,
            gen_kwargs=dict(
                images_path=path(TRAIN_IMAGES_FILENAME),
                labels_path=path(TRAIN_LABELS_FILENAME),
            ),
        ),
        tfds.core.SplitGenerator(
            name=tfds.Split.TEST,
            gen_kwargs=dict(
                images_path=path(TEST_IMAGES_FILENAME),
                labels_path=path(TEST_LABELS_FILENAME),
            ),
        ),
    ]

  def _generate_examples(self, images_path, labels_path):
    """Yield (index, example) pairs read from a gzipped IDX image and label file."""
    images = read_idx_images(images_path)
    labels = read_idx_labels(labels_path)
    if len(images) != len(labels):
      raise ValueError(
          f"{images_path} has {len(images)} images but {labels_path} has "
          f"{len(labels)} labels, expected the same number."
      )
    # The index is a stable key because the files are always read in the
    # same order, as in the stock builder.
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image, "label": label}


def _read_idx(path: str, magic: int, num_dims: int) -> np.ndarray:
  """Read a gzipped IDX file of unsigned bytes and check its header."""
  with gzip.open(path, "rb") as f:
    content = f.read()

  # The header is big-endian uint32: the magic number, then one size per dimension.
  header_size = 4 * (1 + num_dims)
  file_magic = int.from_bytes(content[:4], "big") if len(content) >= 4 else None
  if file_magic != magic:
    found = "none" if file_magic is None else f"{file_magic:#010x}"
    raise ValueError(f"Invalid IDX file {path}: magic number {found}, expected {magic:#010x}.")
  if len(content) < header_size:
    raise ValueError(
        f"Invalid IDX file {path}: {len(content)} bytes, "
        f"too short for a header of {header_size} bytes."
    )

  sizes = np.frombuffer(content, dtype=">u4", count=num_dims, offset=4)
  shape = tuple(int(size) for size in sizes)
  expected_size = header_size + int(np.prod(shape))
  if len(content) != expected_size:
    raise ValueError(
        f"Invalid IDX file {path}: {len(content)} bytes after decompression, "
        f"expected {expected_size} for shape {shape}."
    )
  # Copy, because an array over the bytes object would be read-only.
  return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_idx_images(path: str) -> np.ndarray:
  """Read a gzipped IDX image file into uint8 [N, 28, 28, 1]."""
  images = _read_idx(path, _IDX_IMAGES_MAGIC, num_dims=3)
  if images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
    raise ValueError(
        f"Invalid image file {path}: images are {images.shape[1]}x{images.shape[2]}, "
        f"expected {IMAGE_SIZE}x{IMAGE_SIZE}."
    )
  return images[..., np.newaxis]


def read_idx_labels(path: str) -> np.ndarray:
  """Read a gzipped IDX label file into int64 [N]."""
  labels = _read_idx(path, _IDX_LABELS_MAGIC, num_dims=1).astype(np.int64)
  if labels.size and labels.max() >= len(CLASS_NAMES):
    raise ValueError(
        f"Invalid label file {path}: label {labels.max()} is out of range, "
        f"expected 0 to {len(CLASS_NAMES) - 1}."
    )
  return labels


def missing_local_files(local_dir: str | os.PathLike) -> list[str]:
  """Return the names of the IDX files that are not in local_dir."""
  return [
      filename
      for filename in IDX_FILENAMES
      if not os.path.isfile(os.path.join(local_dir, filename))
  ]


def _missing_files_message(local_dir: str | os.PathLike, missing: list[str]) -> str:
  present = [filename for filename in IDX_FILENAMES if filename not in missing]
  return (
      f"Fashion-MNIST folder {os.fspath(local_dir)} is incomplete: missing "
      f"{', '.join(missing)} (found {', '.join(present)}). Put all four IDX files "
      f"({', '.join(IDX_FILENAMES)}) in that folder, or reinstall them with "
      "`apt-get install --reinstall dataset-fashion-mnist`."
  )


def _not_found_message(local_dir: str | os.PathLike, data_dir: str, error: Exception) -> str:
  return (
      f"Fashion-MNIST is not prepared in {data_dir}, its IDX files are not in "
      f"{os.fspath(local_dir)}, and the TFDS download failed ({type(error).__name__}: "
      f"{error}). To get the files, do one of the following: install them with "
      "`apt-get install dataset-fashion-mnist`, or put the four IDX files "
      f"({', '.join(IDX_FILENAMES)}) in a folder and set "
      "`--config.data.fashion_mnist_dir=DIR`, or run once with network access "
      "so that TFDS downloads them."
  )


def prepare_builder(
    *,
    local_dir: str | os.PathLike = DEFAULT_LOCAL_DIR,
    tfds_data_dir: str | os.PathLike | None = None,
) -> tfds.core.DatasetBuilder:
  """Prepare `fashion_mnist` in tfds_data_dir if needed and return a builder that reads it.

  A dataset already prepared in tfds_data_dir is reused as it is. Otherwise the
  dataset is prepared from the IDX files in local_dir, or, when local_dir
  contains none of them, downloaded by the stock TFDS builder.

  Args:
    local_dir: folder searched for the four IDX files (IDX_FILENAMES).
    tfds_data_dir: TFDS data directory. None means the TFDS default
      (TFDS_DATA_DIR if set, otherwise ~/tensorflow_datasets).

  Returns:
    A prepared builder of `fashion_mnist`.

  Raises:
    FashionMnistNotFoundError: local_dir contains only some of the IDX files,
      or it contains none and the download failed.
  """
  stock_builder = tfds.image_classification.FashionMNIST(data_dir=tfds_data_dir)
  if stock_builder.is_prepared():
    return stock_builder

  missing = missing_local_files(local_dir)
  if not missing:
    local_builder = LocalFashionMNIST(local_dir=local_dir, data_dir=tfds_data_dir)
    logging.info("Preparing Fashion-MNIST once from the IDX files in %s, without a download; "
                 "TFDS calls this step downloading.", local_dir)
    # TFDS 4.9.10 disables GCS, but a version that enables it would fetch
    # the prepared dataset from its bucket instead of reading local_dir.
    local_builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    return local_builder

  if len(missing) < len(IDX_FILENAMES):
    raise FashionMnistNotFoundError(_missing_files_message(local_dir, missing))

  try:
    stock_builder.download_and_prepare()
  except _DOWNLOAD_ERRORS as error:
    raise FashionMnistNotFoundError(
        _not_found_message(local_dir, stock_builder.data_dir_root, error)
    ) from error
  return stock_builder


def load_split(
    split: str,
    *,
    local_dir: str | os.PathLike = DEFAULT_LOCAL_DIR,
    tfds_data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Load a whole Fashion-MNIST split into memory, preparing it first if needed.

  See prepare_builder for where the data comes from.

  Args:
    split: "train" (60000 examples) or "test" (10000 examples).
    local_dir: folder searched for the four IDX files.
    tfds_data_dir: TFDS data directory, None for the TFDS default.

  Returns:
    images: uint8 [N, 28, 28, 1].
    labels: int64 [N], class ids that index CLASS_NAMES.

  Raises:
    ValueError: split is not "train" or "test".
    FashionMnistNotFoundError: see prepare_builder.
  """
  if split not in SPLITS:
    raise ValueError(f"Invalid split {split!r}, expected one of {SPLITS}.")

  builder = prepare_builder(local_dir=local_dir, tfds_data_dir=tfds_data_dir)
  # Read in fixed-size batches rather than with batch_size=-1, which sizes its
  # single batch from the split metadata. Under tfds.testing.mock_data that
  # metadata is missing, and TFDS 4.9.10 then requests a batch of
  # sys.maxsize examples, which aborts the process.
  batches = list(tfds.as_numpy(builder.as_dataset(split=split, batch_size=_READ_BATCH_SIZE)))
  images = np.concatenate([batch["image"] for batch in batches]).astype(np.uint8, copy=False)
  labels = np.concatenate([batch["label"] for batch in batches]).astype(np.int64, copy=False)
  return images, labels


def pad_images(images: np.ndarray) -> np.ndarray:
  """Zero-pad [N, 28, 28, C] images by PADDING pixels on each side to [N, 32, 32, C]."""
  return np.pad(images, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))


def load_domains(
    split: str,
    *,
    local_dir: str | os.PathLike = DEFAULT_LOCAL_DIR,
    tfds_data_dir: str | os.PathLike | None = None,
) -> Domains:
  """Load shoes as domain A and bags as domain B from a Fashion-MNIST split.

  Images stay uint8 in [0, 255], zero-padded to 32x32.

  Args:
    split: "train" or "test".
    local_dir: folder searched for the four IDX files.
    tfds_data_dir: TFDS data directory, None for the TFDS default.

  Raises:
    ValueError: split is not "train" or "test".
    FashionMnistNotFoundError: see prepare_builder.
  """
  images, labels = load_split(split, local_dir=local_dir, tfds_data_dir=tfds_data_dir)
  is_shoe = np.isin(labels, SHOE_CLASSES)
  is_bag = labels == BAG_CLASS
  return Domains(
      images_a=pad_images(images[is_shoe]),
      labels_a=labels[is_shoe],
      images_b=pad_images(images[is_bag]),
  )
