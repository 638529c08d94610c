"""Measure the training pipelines of pix2pix archives and image folders, in images per second.

    python -m crossdomain.data.benchmark [--num_images=512] [--num_steps=100]

Writes synthetic data into a temporary folder, which it deletes afterwards: a
pix2pix archive in the published format (256x512 JPEGs, edges on the left,
photo on the right) and two folders of 256x256 JPEGs. Then it times the
pipelines that training uses, `pipeline.train_batches` over file sources,
and prints images per second, counting both domains. The synthetic photos
are smooth color fields with noise and the edge maps white with dark lines,
so their JPEGs are of a similar size to real ones but not the same.
"""

import io
import os
import tarfile
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from crossdomain.data import image_folders, pipeline

_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 512, "Training images of each synthetic data set.")
_NUM_STEPS = flags.DEFINE_integer("num_steps", 100, "Timed steps of each pipeline.")
_WARMUP_STEPS = flags.DEFINE_integer(
    "warmup_steps", 5, "Steps run before timing, so that tf.data tunes its parallelism.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per domain and step.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Side of the decoded images in pixels.")

_NUM_VAL = 8  # images in the archive's val/ folder


def _synthetic_photo(rng: np.random.Generator, size: int) -> np.ndarray:
  """Return a smooth random color field with noise, uint8 [size, size, 3]."""
  coarse = rng.uniform(0.0, 255.0, (1, 6, 6, 3)).astype(np.float32)
  smooth = tf.image.resize(coarse, (size, size), method="bicubic")[0].numpy()
  noisy = smooth + rng.normal(0.0, 4.0, smooth.shape)
  return np.clip(noisy, 0, 255).astype(np.uint8)


def _synthetic_edges(rng: np.random.Generator, size: int) -> np.ndarray:
  """Return white uint8 [size, size, 3] with a few dark horizontal and vertical lines."""
  edges = np.full((size, size, 3), 255, np.uint8)
  for _ in range(12):
    start, end = sorted(rng.integers(0, size, 2))
    position = rng.integers(0, size - 2)
    if rng.random() < 0.5:
      edges[position:position + 2, start:end] = 0
    else:
      edges[start:end, position:position + 2] = 0
  return edges


def _encode_jpeg(image: np.ndarray) -> bytes:
  return tf.io.encode_jpeg(image, quality=90).numpy()


def write_pix2pix_archive(path: str, dataset: str, num_train: int, num_val: int,
                          seed: int = 0) -> None:
  """Write a synthetic pix2pix archive: <dataset>/train/*.jpg and <dataset>/val/*.jpg, 256x512."""
  rng = np.random.default_rng(seed)
  with tarfile.open(path, "w:gz") as archive:
    for folder, count in (("train", num_train), ("val", num_val)):
      for index in range(count):
        pair = np.concatenate([_synthetic_edges(rng, 256), _synthetic_photo(rng, 256)], axis=1)
        jpeg = _encode_jpeg(pair)
        member = tarfile.TarInfo(f"{dataset}/{folder}/{index + 1}_AB.jpg")
        member.size = len(jpeg)
        archive.addfile(member, io.BytesIO(jpeg))


def write_image_folder(folder: str, count: int, seed: int) -> None:
  """Write `count` synthetic 256x256 JPEG photos into a new folder."""
  os.makedirs(folder)
  rng = np.random.default_rng(seed)
  for index in range(count):
    with open(os.path.join(folder, f"{index:05d}.jpg"), "wb") as file:
      file.write(_encode_jpeg(_synthetic_photo(rng, 256)))


def time_pipeline(source_a: pipeline.FileSource, source_b: pipeline.FileSource, batch_size: int,
                  num_steps: int, warmup_steps: int) -> float:
  """Run the training pipeline over two sources and return images per second, both domains."""
  batches = pipeline.train_batches(source_a, source_b, batch_size, 0, 0).as_numpy_iterator()
  for _ in range(warmup_steps):
    next(batches)
  start = time.perf_counter()
  for _ in range(num_steps):
    next(batches)
  return 2 * batch_size * num_steps / (time.perf_counter() - start)


def run(workdir: str, *, num_images: int, num_steps: int, warmup_steps: int, batch_size: int,
        image_size: int) -> dict[str, float]:
  """Write synthetic data into workdir and time the pix2pix and image folder pipelines.

  Args:
    workdir: an empty folder for the synthetic data.
    num_images: training images of the archive and of each folder.
    num_steps, warmup_steps: timed steps, and steps run before timing.
    batch_size: images per domain and step.
    image_size: side of the decoded images in pixels.

  Returns:
    Measurement name to value: images per second of each pipeline, and the
    seconds taken to prepare the archive and to check the folders.
  """
  # TensorFlow Datasets is slow to import, so only this function pays for it.
  import tensorflow_datasets as tfds

  from crossdomain.data import pix2pix

  tfds.disable_progress_bar()
  results = {}

  manual_dir = os.path.join(workdir, "manual")
  os.makedirs(manual_dir)
  write_pix2pix_archive(os.path.join(manual_dir, pix2pix.archive_name("edges2shoes")),
                        "edges2shoes", num_images, _NUM_VAL)
  start = time.perf_counter()
  # One archive for both domains: A gets the photo halves of half the
  # images and B the edge halves of the other half.
  domain_a, domain_b = pix2pix.load_domains(
      ("edges2shoes", "edges2shoes"), ("photo", "edges"), image_size=image_size,
      max_test_examples=_NUM_VAL, seed=0, manual_dir=manual_dir,
      tfds_data_dir=os.path.join(workdir, "tfds"))
  results["pix2pix_prepare_seconds"] = time.perf_counter() - start
  results["pix2pix_images_per_second"] = time_pipeline(
      domain_a.train, domain_b.train, batch_size, num_steps, warmup_steps)

  folders = [os.path.join(workdir, name) for name in ("folder_a", "folder_b")]
  for seed, folder in enumerate(folders):
    write_image_folder(folder, num_images, seed)
  start = time.perf_counter()
  sources = [image_folders.ImageFiles(list(image_folders.find_images(folder, image_size, 3)),
                                      image_size, 3)
             for folder in folders]
  results["folders_check_seconds"] = time.perf_counter() - start
  results["folders_images_per_second"] = time_pipeline(
      sources[0], sources[1], batch_size, num_steps, warmup_steps)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  with tempfile.TemporaryDirectory(prefix="crossdomain_benchmark_") as workdir:
    results = run(workdir, num_images=_NUM_IMAGES.value, num_steps=_NUM_STEPS.value,
                  warmup_steps=_WARMUP_STEPS.value, batch_size=_BATCH_SIZE.value,
                  image_size=_IMAGE_SIZE.value)
  print(f"Input pipelines at {_IMAGE_SIZE.value}x{_IMAGE_SIZE.value}, batch "
        f"{_BATCH_SIZE.value} per domain, {os.cpu_count()} CPU cores:")
  print(f"  pix2pix archive (ArrayRecord, photo and edge halves): "
        f"{results['pix2pix_images_per_second']:8.0f} images/s")
  print(f"  image folders (256x256 JPEG files):                   "
        f"{results['folders_images_per_second']:8.0f} images/s")
  print(f"  preparing the archive of {_NUM_IMAGES.value} + {_NUM_VAL} images: "
        f"{results['pix2pix_prepare_seconds']:.1f} s; checking 2 x {_NUM_IMAGES.value} "
        f"folder images: {results['folders_check_seconds']:.1f} s")


if __name__ == "__main__":
  app.run(main)
