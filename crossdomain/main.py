"""Train a coupled GAN: python -m crossdomain.main --config=configs/X.py --workdir=DIR.

Override any config field with --config.FIELD=VALUE, for example
--config.num_steps=2000 or --config.loss.variant=gan.
"""

import logging as std_logging

from absl import app, flags, logging
from ml_collections import config_flags

flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and figures; "
                    "running again with the same folder resumes the run.")
config_flags.DEFINE_config_file("config", None, "Run config file, such as configs/gmm.py.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


class _DropLibraryInfo(std_logging.Filter):
  """Drop orbax's INFO records, which narrate every save; keep its warnings."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return record.levelno > std_logging.INFO or "/orbax/" not in record.pathname


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

  # TensorFlow only feeds data; keep it off the accelerators that JAX uses.
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")

  from crossdomain import train
  logging.get_absl_handler().addFilter(_DropLibraryInfo())
  logging.info("Config:\n%s", FLAGS.config)
  train.train_and_evaluate(FLAGS.config, FLAGS.workdir)


if __name__ == "__main__":
  app.run(main)
