"""Deterministic, resumable tf.data batches of two independently shuffled domains.

A domain's training examples are either an in-memory array or a FileSource,
which keeps them encoded on disk and decodes each batch when it is needed.
Either way the examples are visited epoch after epoch, each epoch in a
permutation drawn from (seed, epoch) alone, so the batch of any step is a
pure function of the seed and the step. A run that resumes at step s starts
the stream at s and sees exactly the batches an uninterrupted run would have
seen.

The two domains use different seeds and their own epochs, so an A batch is
never paired with a fixed B batch.
"""

import abc

import numpy as np
import tensorflow as tf

_UNBOUNDED = 2**62  # epochs; the stream is cut by the training loop, not here


class FileSource(abc.ABC):
  """Training examples kept encoded in files, read and decoded by index.

  The pipeline calls `fetch` for the stored form of a batch of indices (file
  paths, or the records themselves), then runs `decode` on each element in
  parallel. Both must be deterministic, because the batch of a step must not
  depend on when or how often it is read.
  """

  @abc.abstractmethod
  def __len__(self) -> int:
    """Return the number of examples."""

  @property
  @abc.abstractmethod
  def example_shape(self) -> tuple[int, ...]:
    """Shape of one decoded example, such as (64, 64, 3)."""

  @abc.abstractmethod
  def fetch(self, indices: tf.Tensor) -> tf.Tensor:
    """Return the stored form of examples `indices` (int64 [n]) as string [n]."""

  @abc.abstractmethod
  def decode(self, stored: tf.Tensor) -> tf.Tensor:
    """Decode one stored example (a string scalar) into `example_shape`, uint8 for images."""


def center_crop_and_resize(image: tf.Tensor, size: int) -> tf.Tensor:
  """Cut the largest centered square out of an image and resize it to size x size.

  Shrinking averages the source pixels under each output pixel (area
  resizing), so it does not alias. Enlarging interpolates bilinearly.

  Args:
    image: [height, width, channels] of any real or integer dtype, values in [0, 255].
    size: side of the output in pixels.

  Returns:
    uint8 [size, size, channels].
  """
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  side = tf.minimum(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  square = tf.cast(image[top:top + side, left:left + side], tf.float32)

  def resize(method):
    return lambda: tf.image.resize(square, (size, size), method=method)

  resized = tf.case([(tf.equal(side, size), lambda: square), (side > size, resize("area"))],
                    default=resize("bilinear"))
  resized = tf.ensure_shape(resized, [size, size, image.shape[-1]])
  return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


# Downscaling ratios that libjpeg applies while decoding, in the DCT domain.
_JPEG_RATIOS = (1, 2, 4, 8)


def _ceil_div(value: tf.Tensor, divisor: int) -> tf.Tensor:
  return (value + divisor - 1) // divisor


def decode_jpeg_window(jpeg: tf.Tensor, window: tf.Tensor, min_side: int) -> tf.Tensor:
  """Decode a window of a JPEG, shrunk while decoding as far as min_side allows.

  libjpeg decodes at 1/2, 1/4 or 1/8 scale by dropping DCT coefficients,
  which costs much less than decoding at full size and resizing after. The
  largest ratio is used that keeps both sides of the window at least
  min_side pixels.

  Args:
    jpeg: string scalar, an encoded JPEG.
    window: int32 [4], (top, left, height, width) in pixels of the full-size image.
    min_side: the smallest side, in pixels, that the output may have.

  Returns:
    uint8 [h, w, 3], the window at the chosen scale.
  """
  shape = tf.io.extract_jpeg_shape(jpeg)
  top, left, height, width = tf.unstack(tf.cast(window, tf.int32))
  window_side = tf.minimum(height, width)
  ratio_index = tf.constant(0)
  for index, ratio in enumerate(_JPEG_RATIOS[1:], start=1):
    ratio_index = tf.where(window_side >= min_side * ratio, index, ratio_index)

  def decode_at(ratio):
    def decode():
      # libjpeg's scaled image is ceil(size / ratio) pixels on each side.
      scaled_height, scaled_width = _ceil_div(shape[0], ratio), _ceil_div(shape[1], ratio)
      scaled_top, scaled_left = top // ratio, left // ratio
      scaled_window = tf.stack([
          scaled_top, scaled_left,
          tf.minimum(_ceil_div(height, ratio), scaled_height - scaled_top),
          tf.minimum(_ceil_div(width, ratio), scaled_width - scaled_left)])
      return tf.io.decode_and_crop_jpeg(jpeg, scaled_window, channels=3, ratio=ratio)
    return decode

  image = tf.switch_case(ratio_index, [decode_at(ratio) for ratio in _JPEG_RATIOS])
  return tf.ensure_shape(image, [None, None, 3])


def decode_examples(source: FileSource, indices: np.ndarray | None = None) -> np.ndarray:
  """Decode examples of a file source into one in-memory array, in parallel.

  Args:
    source: the examples.
    indices: which examples, in this order; None for all of them.

  Returns:
    uint8 [len(indices), *source.example_shape].
  """
  if indices is None:
    indices = np.arange(len(source))
  indices = np.asarray(indices, np.int64)
  if not len(indices):
    return np.zeros((0, *source.example_shape), np.uint8)
  # Fetch in chunks so that a source that reads records through Python pays
  # for one call per chunk, not per example.
  chunks = tf.data.Dataset.from_tensor_slices(indices).batch(256)
  stored = chunks.map(source.fetch).unbatch()
  decoded = stored.map(source.decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return np.stack(list(decoded.as_numpy_iterator()))


def index_stream(num_examples: int, batch_size: int, seed: int, start_step: int) -> tf.data.Dataset:
  """Return batches of example indices [batch_size] for steps start_step, start_step + 1, ...

  Batches run across epoch boundaries, so every example is used equally often.
  """
  first_epoch, offset = divmod(start_step * batch_size, num_examples)

  def permutation(epoch):
    epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
    return tf.random.experimental.stateless_shuffle(tf.range(num_examples, dtype=tf.int64),
                                                    seed=epoch_seed)

  epochs = tf.data.Dataset.range(first_epoch, _UNBOUNDED).map(permutation)
  return epochs.unbatch().skip(offset).batch(batch_size, drop_remainder=True)


def to_model_range(examples: tf.Tensor) -> tf.Tensor:
  """Scale uint8 images to float32 in [-1, 1]; pass float vectors through."""
  if examples.dtype == tf.uint8:
    return tf.cast(examples, tf.float32) / 127.5 - 1.0
  return tf.cast(examples, tf.float32)


def _file_source_batches(source: FileSource, local_indices: tf.data.Dataset,
                         local: int) -> tf.data.Dataset:
  """Read and decode the examples of each batch of indices, keeping their order."""
  stored = local_indices.map(source.fetch, num_parallel_calls=tf.data.AUTOTUNE,
                             deterministic=True)
  # Decode example by example so that the decoding of one batch runs on all
  # cores. deterministic=True keeps the examples in index order.
  decoded = stored.unbatch().map(source.decode, num_parallel_calls=tf.data.AUTOTUNE,
                                 deterministic=True)
  return decoded.batch(local, drop_remainder=True).map(to_model_range)


def domain_batches(examples: np.ndarray | FileSource, batch_size: int, seed: int,
                   start_step: int, process_index: int = 0,
                   process_count: int = 1) -> tf.data.Dataset:
  """Return this process's share of each global batch of one domain, in model range.

  Process p reads rows [p * local, (p + 1) * local) of every global batch of
  `batch_size` rows, so the global batch contains the same rows whatever the
  number of processes. Where they sit in the assembled array follows the
  mesh's placement of each process's devices, so their order can differ,
  which changes neither the losses nor the batch statistics. A file source
  is read and decoded only for this process's rows.

  Args:
    examples: an in-memory array [N, ...] or a FileSource.
    batch_size: rows of the global batch.
    seed: seed of the epoch permutations.
    start_step: the first step of the stream.
    process_index, process_count: this process and the number of processes.

  Returns:
    A dataset of float32 [batch_size // process_count, ...] batches.
  """
  if len(examples) < batch_size:
    raise ValueError(f"batch size {batch_size} is larger than the domain's "
                     f"{len(examples)} training examples; lower data.batch_size")
  local = batch_size // process_count
  first_row = process_index * local

  def local_rows(indices):
    return indices[first_row:first_row + local]

  local_indices = index_stream(len(examples), batch_size, seed, start_step).map(local_rows)
  if isinstance(examples, FileSource):
    return _file_source_batches(examples, local_indices, local)

  table = tf.constant(examples)
  return local_indices.map(lambda indices: to_model_range(tf.gather(table, indices)))


def train_batches(examples_a: np.ndarray | FileSource, examples_b: np.ndarray | FileSource,
                  batch_size: int, seed: int, start_step: int, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
  """Return (batch_a, batch_b) pairs for every step from `start_step` on.

  Args:
    examples_a, examples_b: each domain's training examples, an in-memory
      array or a FileSource.
    batch_size: rows of the global batch.
    seed: the run's seed; the domains use 2 * seed and 2 * seed + 1.
    start_step: the first step of the stream, the step a resumed run starts at.
    process_index, process_count: this process and the number of processes.

  Returns:
    A prefetched dataset of float32 (batch_a, batch_b) pairs, this process's
    rows of each global batch.
  """
  # Distinct seeds so that two domains of equal size are not shuffled alike.
  batches_a = domain_batches(examples_a, batch_size, 2 * seed, start_step,
                             process_index, process_count)
  batches_b = domain_batches(examples_b, batch_size, 2 * seed + 1, start_step,
                             process_index, process_count)
  return tf.data.Dataset.zip(batches_a, batches_b).prefetch(tf.data.AUTOTUNE)
