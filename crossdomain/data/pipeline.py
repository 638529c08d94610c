"""Deterministic, resumable tf.data batches of two independently shuffled domains.

Each domain is an in-memory array. Its examples are visited epoch after
epoch, each epoch in a permutation drawn from (seed, epoch) alone, so the
batch of any step is a pure function of the seed and the step. A run that
resumes at step s starts the stream at s and sees exactly the batches an
uninterrupted run would have seen.

The two domains use different seeds and their own epochs, so an A batch is
never paired with a fixed B batch.
"""

import numpy as np
import tensorflow as tf

_UNBOUNDED = 2**62  # epochs; the stream is cut by the training loop, not here


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


def domain_batches(examples: np.ndarray, batch_size: int, seed: int, start_step: int,
                   process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
  """Return this process's share of each global batch of one domain, in model range.

  Process p gets rows [p * local, (p + 1) * local) of every global batch of
  `batch_size` rows, so the global batch does not depend on the number of
  processes.
  """
  if len(examples) < batch_size:
    raise ValueError(f"batch size {batch_size} is larger than the domain's "
                     f"{len(examples)} training examples; lower data.batch_size")
  local = batch_size // process_count
  table = tf.constant(examples)

  def gather(indices):
    return to_model_range(tf.gather(table, indices[process_index * local:(process_index + 1) * local]))

  return index_stream(len(examples), batch_size, seed, start_step).map(gather)


def train_batches(examples_a: np.ndarray, examples_b: np.ndarray, batch_size: int, seed: int,
                  start_step: int, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
  """Return (batch_a, batch_b) numpy pairs for every step from `start_step` on."""
  # Distinct seeds so that two domains of equal size are not shuffled alike.
  batches_a = domain_batches(examples_a, batch_size, 2 * seed, start_step,
                             process_index, process_count)
  batches_b = domain_batches(examples_b, batch_size, 2 * seed + 1, start_step,
                             process_index, process_count)
  return tf.data.Dataset.zip(batches_a, batches_b).prefetch(tf.data.AUTOTUNE)
