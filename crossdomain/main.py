"""Train a coupled GAN: python -m crossdomain.main --config=configs/X.py --workdir=DIR.

Override any config field with --config.FIELD=VALUE, for example
--config.num_steps=2000 or --config.loss.variant=gan.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from crossdomain import cli, preemption

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


def _check_distributed_flags() -> None:
  """Exit with a one-line error when only some of the manual multi-process flags are given."""
  manual = (FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  if any(value is not None for value in manual) and any(value is None for value in manual):
    sys.exit("error: --coordinator_address, --num_processes and --process_id must be "
             "given together; give all three, or none on one host")


def _initialize_distributed() -> None:
  """Connect this process to the others of a multi-process run, if it is one."""
  import jax

  if FLAGS.coordinator_address is not None:
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
  _check_distributed_flags()

  # Check the config and workdir before importing TensorFlow (about 9 s on two
  # cores), so that a mistake in them is reported at once.
  from crossdomain import config as config_lib, workdir_lock
  from crossdomain.divergence import TrainingDivergedError
  from crossdomain.errors import UserInputError
  cli.quiet_library_logs()
  try:
    # Validate first, so that an error is not buried under the config dump.
    config_lib.validate(FLAGS.config)
    workdir_lock.check_path(FLAGS.workdir)
    overridden = config_flags.get_override_values(FLAGS["config"])
    logging.info("Config:\n%s", cli.format_config(FLAGS.config, overridden))

    cli.import_tensorflow()
    from crossdomain import train

    _initialize_distributed()
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (UserInputError, FileNotFoundError, TrainingDivergedError) as error:
    cli.quiet_exit_after_error()
    sys.exit(f"error: {error}")
  except KeyboardInterrupt:
    # Within the training steps Ctrl-C saves a checkpoint (see preemption.py).
    # It lands here only during setup, such as an evaluator's training.
    sys.exit("interrupted before the training steps; checkpoints saved earlier are kept")


if __name__ == "__main__":
  preemption.install_interrupt_redelivery()
  app.run(main, flags_parser=cli.parse_flags)
