"""Train a coupled GAN: python -m crossdomain.main --config=configs/X.py --workdir=DIR.

Override any config field with --config.FIELD=VALUE, for example
--config.num_steps=2000 or --config.loss.variant=gan.
"""

import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

flags.DEFINE_string("workdir", None, "Folder for checkpoints, metrics and figures; "
                    "running again with the same folder resumes the run.")
config_flags.DEFINE_config_file("config", None, "Run config file, such as configs/gmm.py.",
                                lock_config=True)
flags.DEFINE_bool("distributed", False, "Join a multi-process run with "
                  "jax.distributed.initialize() and no arguments, as on a Cloud TPU VM pod "
                  "or under SLURM, where JAX finds the other processes itself.")
flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0, for clusters "
                    "where JAX cannot find the other processes itself; needs "
                    "--num_processes and --process_id.")
flags.DEFINE_integer("num_processes", None, "Number of processes of the run.")
flags.DEFINE_integer("process_id", None, "This process's index, from 0.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS


def _parse_flags(argv: list[str]) -> list[str]:
  """Parse flags, reporting an unknown config field in one line instead of a traceback."""
  try:
    remaining = FLAGS(argv)
    FLAGS.config.to_dict()  # a config file that failed to load raises here
    return remaining
  except OSError as error:
    missing = _missing_config_file(argv)
    if missing:
      sys.exit(f"FATAL Flags parsing error: {missing}")
    cause = error.__cause__ or error
    sys.exit(f"FATAL Flags parsing error: --config could not be loaded: {cause}")
  except (AttributeError, KeyError) as error:
    # ml_collections raises these for --config.FIELD overrides of fields that
    # do not exist; the message names the field and a close match.
    text = str(error)
    field = re.search(r"[\w.]+", text)
    hint = re.search(r"Did you mean [^?]*\?", text)
    sys.exit(f"FATAL Flags parsing error: unknown config field "
             f"'{field.group(0) if field else text}'. {hint.group(0) if hint else ''}".strip())
  except flags.Error as error:
    message = _describe_override_error(str(error)) or str(error)
    sys.exit(f"FATAL Flags parsing error: {message}\nPass --helpshort or --helpfull to see help.")


def _missing_config_file(argv: list[str]) -> str | None:
  """Describe the --config file of `argv` if it does not exist, with the files beside it."""
  values = [argument.split("=", 1)[1] for argument in argv if argument.startswith("--config=")]
  if not values:
    return None
  path = values[-1].split(":", 1)[0]  # a config file may take an argument after a colon
  if os.path.exists(path):
    return None
  folder = os.path.dirname(path) or "."
  known = sorted(name for name in os.listdir(folder) if name.endswith(".py")
                 and not name.startswith("_")) if os.path.isdir(folder) else []
  listing = f"; {folder} contains {', '.join(known)}" if known else ""
  return f"config file {path} not found{listing}"


# The kind of value each type of config field expects, for error messages.
_KINDS = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}


def _describe_override_error(text: str) -> str | None:
  """Turn absl's message about a --config.FIELD=VALUE of the wrong type into one that names it.

  Returns None when the message is about something else.
  """
  match = re.match(r"flag --config\.([\w.]+)=(.*?): ", text)
  if not match:
    return None
  field, value = match.groups()
  try:
    default = FLAGS["config"].value
    for name in field.split("."):
      default = default[name]
  except (AttributeError, KeyError, TypeError):
    return None
  example = str(default).lower() if isinstance(default, bool) else repr(default)
  kind = _KINDS.get(type(default), type(default).__name__)
  return f"--config.{field} expects {kind}, such as {example}, got {value!r}"


def _initialize_distributed() -> None:
  """Connect this process to the others of a multi-process run, if it is one."""
  import jax

  manual = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if any(value is not None for value in manual):
    if any(value is None for value in manual):
      sys.exit("error: --coordinator_address, --num_processes and --process_id must be "
               "given together; give all three, or none on one host")
    # Collectives between CPU processes need an implementation; accelerators
    # bring their own, and ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                               FLAGS.process_id)
  elif FLAGS.distributed:
    jax.distributed.initialize()
  else:
    return
  logging.info("Process %d of %d, %d local and %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

  # TensorFlow only feeds data; keep it off the accelerators that JAX uses.
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")

  from crossdomain import cli, config as config_lib, train
  cli.quiet_library_logs()
  _initialize_distributed()
  from crossdomain.divergence import TrainingDivergedError
  from crossdomain.errors import UserInputError
  try:
    # Validate first, so that a config error is not buried under the config dump.
    config_lib.validate(FLAGS.config)
    overridden = config_flags.get_override_values(FLAGS["config"])
    logging.info("Config:\n%s", cli.format_config(FLAGS.config, overridden))
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (UserInputError, FileNotFoundError, TrainingDivergedError) as error:
    cli.quiet_exit_after_error()
    sys.exit(f"error: {error}")
  except KeyboardInterrupt:
    # Within the training steps Ctrl-C saves a checkpoint (see preemption.py).
    # It lands here only during setup, such as an evaluator's training.
    sys.exit("interrupted before the training steps; checkpoints saved earlier are kept")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
