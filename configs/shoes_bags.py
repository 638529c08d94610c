"""DiscoGAN between shoe photos (A, edges2shoes) and handbag photos (B, edges2handbags).

This is the handbags2shoes task of the reference implementation
(github.com/SKTBrain/DiscoGAN, discogan/image_translation.py) with the
domains swapped. Each domain is the photo halves of every training JPEG of
its pix2pix archive, at 64x64x3. Batch size 64 and the reference losses and
schedule are the base config's defaults. The two domains are drawn
independently.

    python -m crossdomain.main --config=configs/shoes_bags.py --workdir=DIR

The first run prepares both archives with TensorFlow Datasets: it downloads
edges2shoes.tar.gz and edges2handbags.tar.gz (several GB each) from
http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/, or reads them from
--config.data.manual_dir=DIR. Preparing stores about as many bytes again
under --config.data.tfds_data_dir, and later runs reuse them.

Time, a rough estimate that no run has measured: under an hour of training
on one recent GPU or a TPU VM, plus the download and preparation. A step
needs 128 decoded JPEG halves, and the input pipeline decoded 2,800 to 4,900
per second on 2 shared CPU cores (`python -m crossdomain.data.benchmark`), so
a host with 8 or more cores should keep the accelerator busy.

Result, expected but not verified: translations that keep the orientation
and the main colors of the input shoe or bag, and reconstructions close to
the inputs.
"""

import ml_collections

from crossdomain import config as base


def get_config():
  """Return the shoes and handbags config."""
  config = base.base_config()
  # The reference trains until stopped. 50k steps are roughly 60 epochs of
  # the ~50k training shoes and run 40k steps past the reconstruction curriculum.
  config.num_steps = 50_000
  config.log_every = 100
  config.sample_every = 1_000
  config.checkpoint_every = 2_500

  config.data.name = "pix2pix"
  config.data.batch_size = 64
  config.data.image_size = 64
  config.data.dataset_a = "edges2shoes"
  config.data.half_a = "photo"  # "photo" (right half of each JPEG) or "edges" (left half)
  config.data.dataset_b = "edges2handbags"
  config.data.half_b = "photo"
  # Cap on the val/ images kept in memory per domain: 200 at 64x64x3 take 2.4 MB.
  config.data.max_test_examples = 200
  # Folder that contains the downloaded archives; None for
  # <tfds_data_dir>/downloads/manual.
  config.data.manual_dir = ml_collections.config_dict.placeholder(str)
  # Where TensorFlow Datasets prepares the data; None for its default,
  # ~/tensorflow_datasets. Use a local disk, because the training pipeline
  # reads it at random.
  config.data.tfds_data_dir = ml_collections.config_dict.placeholder(str)

  config.eval.every = 2_500
  config.eval.metric = "frechet_distance_mean"
  config.eval.patience = 8
  return config
