"""Train a coupled GAN: python -m crossdomain.main --config=configs/X.py --workdir=DIR.

Override any config field with --config.FIELD=VALUE, for example
--config.num_steps=2000 or --config.loss.variant=gan.
"""

import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and figures; "
                    "running again with the same folder resumes the run.")
config_flags.DEFINE_config_file("config", None, "Run config file, such as configs/gmm.py.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def _parse_flags(argv: list[str]) -> list[str]:
  """Parse flags, reporting an unknown config field in one line instead of a traceback."""
  try:
    return FLAGS(argv)
  except (AttributeError, KeyError) as error:
    # ml_collections raises these for --config.FIELD overrides of fields that
    # do not exist; the message names the field and a close match.
    text = str(error)
    field = re.search(r"[\w.]+", text)
    hint = re.search(r"Did you mean [^?]*\?", text)
    sys.exit(f"FATAL Flags parsing error: unknown config field "
             f"'{field.group(0) if field else text}'. {hint.group(0) if hint else ''}".strip())
  except flags.Error as error:
    sys.exit(f"FATAL Flags parsing error: {error}\nPass --helpshort or --helpfull to see help.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

  # TensorFlow only feeds data; keep it off the accelerators that JAX uses.
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")

  from crossdomain import cli, train
  cli.quiet_library_logs()
  from crossdomain.divergence import TrainingDivergedError
  from crossdomain.errors import UserInputError
  logging.info("Config:\n%s", FLAGS.config)
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (UserInputError, FileNotFoundError, TrainingDivergedError) as error:
    logging.error("%s", error)
    sys.exit(f"error: {error}")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
