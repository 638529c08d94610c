"""DiscoGAN between two folders of images, A and B, at 64x64x3.

Every file under each folder, searched recursively, that TensorFlow decodes as
an image (JPEG, PNG, GIF, BMP or WebP) becomes an example. Other files are
skipped and logged. Each image is center-cropped to a square and resized.
Losses and schedule are the reference DiscoGAN's.

    python -m crossdomain.main --config=configs/image_folders.py --workdir=DIR \\
        --config.data.folder_a=PHOTOS_A --config.data.folder_b=PHOTOS_B
"""

import ml_collections

from crossdomain import config as base


def get_config():
  """Return the image folders config."""
  config = base.base_config()

  config.data.name = "image_folders"
  config.data.folder_a = ml_collections.config_dict.placeholder(str)
  config.data.folder_b = ml_collections.config_dict.placeholder(str)
  config.data.image_size = 64  # a power of two of at least 8
  config.data.channels = 3  # 3 for RGB, 1 for grayscale
  # Share of each folder's images held out for figures and evaluation, drawn
  # from the seed, at most max_test_examples. Evaluation needs at least 8
  # held-out images per folder. Folders of fewer than 150 images need a
  # larger share, which the error at start names.
  config.data.test_fraction = 0.05
  config.data.max_test_examples = 500

  config.eval.every = 1_000
  config.eval.metric = "frechet_distance_mean"
  config.eval.patience = 8
  return config
