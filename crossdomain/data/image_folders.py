"""Any folder of images as a domain: files found recursively, decoded by tf.data.

Every file is decoded once up front by the same TensorFlow function that the
training pipeline uses, and only the files that decode are kept, so a
corrupt file cannot stop a run halfway. The pipeline then reads and decodes
the kept files again at each visit, so only their paths stay in memory.
"""

import os
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from crossdomain.data import pipeline
from crossdomain.errors import UserInputError

# The first bytes of every PNG file and of every JPEG file.
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"

# ITU-R BT.601 luma weights, the ones Pillow's convert("L") uses.
_LUMA_WEIGHTS = (0.299, 0.587, 0.114)

# The formats that `decode_image` reads, for messages.
IMAGE_FORMATS = "PNG, JPEG, GIF, BMP or WebP"

# At most this many skipped file names go into the log message.
_MAX_LOGGED_NAMES = 100


class ImageFolderNotFoundError(UserInputError, FileNotFoundError):
  """Raised when an image folder does not exist or is not a folder."""


def check_channels(channels: int) -> None:
  """Raise UserInputError unless channels is 1 (grayscale) or 3 (RGB)."""
  if channels not in (1, 3):
    raise UserInputError(f"config.data.channels must be 1 or 3, got {channels!r}")


def _decode_png_over_white(encoded: tf.Tensor) -> tf.Tensor:
  """Decode a PNG of any mode into float32 RGB, compositing transparency over white."""
  # channels=4 turns grayscale, palette and RGB PNGs into RGBA as well, with
  # an opaque alpha where the file has none.
  rgba = tf.cast(tf.io.decode_png(encoded, channels=4), tf.float32)
  alpha = rgba[..., 3:] / 255.0
  return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


def _decode_jpeg_square(encoded: tf.Tensor, min_side: int) -> tf.Tensor:
  """Decode the centered square of a JPEG into float32 RGB, shrunk while decoding."""
  shape = tf.io.extract_jpeg_shape(encoded)
  height, width = shape[0], shape[1]
  side = tf.minimum(height, width)
  window = tf.stack([(height - side) // 2, (width - side) // 2, side, side])
  return tf.cast(pipeline.decode_jpeg_window(encoded, window, min_side), tf.float32)


def _decode_other_rgb(encoded: tf.Tensor) -> tf.Tensor:
  """Decode a GIF, BMP, WebP or other image that tf.io.decode_image reads into float32 RGB."""
  # expand_animations=False keeps the first frame of a GIF, as a 3-D image.
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  return tf.cast(image, tf.float32)


def decode_image(encoded: tf.Tensor, image_size: int, channels: int) -> tf.Tensor:
  """Decode an encoded image, convert it to `channels` and center-crop and resize it.

  JPEG, PNG and the other formats of tf.io.decode_image (GIF, BMP, WebP) are
  read. Grayscale and palette images become RGB, PNG transparency is
  composited over white, and for channels=1 the RGB result is converted to
  luma. JPEGs are shrunk by up to 8x while decoding (see
  `pipeline.decode_jpeg_window`), the rest by resizing after.

  Args:
    encoded: string scalar, the file's bytes.
    image_size: side of the output in pixels.
    channels: 1 (grayscale) or 3 (RGB).

  Returns:
    uint8 [image_size, image_size, channels].

  Raises:
    UserInputError: channels is not 1 or 3.
    tf.errors.InvalidArgumentError: when the bytes are not a readable image,
      at the time the op runs.
  """
  check_channels(channels)
  signature = tf.strings.substr(encoded, 0, len(_PNG_SIGNATURE))
  is_png = tf.equal(signature, _PNG_SIGNATURE)
  is_jpeg = tf.equal(tf.strings.substr(signature, 0, len(_JPEG_SIGNATURE)), _JPEG_SIGNATURE)
  rgb = tf.case([(is_png, lambda: _decode_png_over_white(encoded)),
                 (is_jpeg, lambda: _decode_jpeg_square(encoded, image_size))],
                default=lambda: _decode_other_rgb(encoded), exclusive=True)
  rgb = tf.ensure_shape(rgb, [None, None, 3])
  if channels == 1:
    rgb = tf.tensordot(rgb, tf.constant(_LUMA_WEIGHTS, tf.float32), axes=1)[..., tf.newaxis]
  return pipeline.center_crop_and_resize(rgb, image_size)


class ImageFiles(pipeline.FileSource):
  """Image files decoded, center-cropped and resized each time they are read."""

  def __init__(self, paths: Sequence[str], image_size: int, channels: int):
    """Create a source over image files.

    Args:
      paths: the files, each one readable by `decode_image`.
      image_size: side of each example in pixels.
      channels: 1 or 3.
    """
    check_channels(channels)
    self.paths = tuple(paths)
    self.image_size = image_size
    self.channels = channels
    self._path_table = tf.constant(list(self.paths), tf.string)

  def __len__(self) -> int:
    return len(self.paths)

  @property
  def example_shape(self) -> tuple[int, ...]:
    return (self.image_size, self.image_size, self.channels)

  def fetch(self, indices: tf.Tensor) -> tf.Tensor:
    """Return the paths of examples `indices`, string [n]."""
    return tf.gather(self._path_table, indices)

  def decode(self, stored: tf.Tensor) -> tf.Tensor:
    """Read the file at path `stored` and decode it into uint8 [size, size, channels]."""
    return decode_image(tf.io.read_file(stored), self.image_size, self.channels)


def list_files(folder: str, field: str = "data.folder_a or data.folder_b") -> list[str]:
  """Return the paths of all files under a folder, recursively, in sorted order.

  Files and folders whose names start with "." (such as .DS_Store or .git)
  are left out.

  Args:
    folder: the folder to search.
    field: the setting or flag that named the folder, for error messages.

  Raises:
    ImageFolderNotFoundError: the folder does not exist or is not a folder.
  """
  if not os.path.isdir(folder):
    raise ImageFolderNotFoundError(f"image folder {folder} does not exist or is not a "
                                   f"folder; check {field}")
  paths = []
  for root, folders, names in os.walk(folder):
    folders[:] = [name for name in folders if not name.startswith(".")]
    paths.extend(os.path.join(root, name) for name in names if not name.startswith("."))
  return sorted(paths)


def fingerprint_images(paths: Sequence[str], image_size: int,
                       channels: int) -> list[bytes | None]:
  """Decode every file once, in parallel, and fingerprint the bytes of those that decode.

  The check runs `decode_image` with the training settings, so a file it
  accepts is one the training pipeline can read. The fingerprint costs no
  second read of the file.

  Args:
    paths: the files to check.
    image_size, channels: as for `decode_image`.

  Returns:
    For each path, the 8-byte farmhash64 fingerprint of its file when the
    file is a readable image, and None when it is not.
  """
  if not paths:
    return []
  files = tf.data.Dataset.from_tensor_slices((np.arange(len(paths)), list(paths)))

  def check(index, path):
    encoded = tf.io.read_file(path)
    image = decode_image(encoded, image_size, channels)
    # Depend on the pixels, so that no part of the decoding is pruned away.
    with tf.control_dependencies([tf.reduce_max(image)]):
      return index, tf.fingerprint(encoded[tf.newaxis])[0]

  checked = files.map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  fingerprints = [None] * len(paths)
  for index, fingerprint in checked.ignore_errors().as_numpy_iterator():
    fingerprints[index] = fingerprint.tobytes()
  return fingerprints


def find_images(folder: str, image_size: int, channels: int,
                field: str = "data.folder_a or data.folder_b") -> dict[str, bytes]:
  """Find the readable images under a folder and fingerprint their files.

  Files that do not decode (corrupt files, other file types, unreadable
  files) are skipped, and one warning names them.

  Args:
    folder: searched recursively.
    image_size, channels: the training settings, as for `decode_image`.
    field: the setting or flag that named the folder, for error messages.

  Returns:
    The path of each readable image, in sorted order, and the fingerprint of
    its file (see `fingerprint_images`).

  Raises:
    ImageFolderNotFoundError: the folder does not exist.
    UserInputError: the folder contains no readable image.
  """
  start = time.perf_counter()
  paths = list_files(folder, field)
  fingerprints = fingerprint_images(paths, image_size, channels)
  images = {path: fingerprint for path, fingerprint in zip(paths, fingerprints)
            if fingerprint is not None}
  skipped = [os.path.relpath(path, folder) for path, fingerprint in zip(paths, fingerprints)
             if fingerprint is None]
  logging.info("Found %d readable images among %d files in %s (checked in %.1f s)",
               len(images), len(paths), folder, time.perf_counter() - start)
  if skipped:
    names = ", ".join(skipped[:_MAX_LOGGED_NAMES])
    if len(skipped) > _MAX_LOGGED_NAMES:
      names += f", and {len(skipped) - _MAX_LOGGED_NAMES} more"
    if len(skipped) == 1:
      description = "file that is not a readable image"
    else:
      description = "files that are not readable images"
    logging.warning("Skipped %d %s in %s: %s", len(skipped), description, folder, names)
  if not images:
    raise UserInputError(f"image folder {folder} contains no readable images "
                         f"({len(paths)} files, none of them a readable {IMAGE_FORMATS} "
                         f"image); point {field} at a folder of images")
  return images
