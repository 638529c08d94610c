"""The log filter, config listing and config errors of the command-line programs."""

import logging
import os
import subprocess
import sys

import ml_collections
import pytest

from crossdomain import cli

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_ORBAX_FILE = "/site-packages/orbax/checkpoint/checkpoint_manager.py"
_XLA_BRIDGE_FILE = "/site-packages/jax/_src/xla_bridge.py"


def _record(pathname, level, message, *args):
  return logging.LogRecord("absl", level, pathname, 1, message, args, None)


@pytest.mark.parametrize("pathname,level,message,args,kept", [
    (_ORBAX_FILE, logging.INFO, "Saving checkpoint at step %d", (3,), False),
    (_ORBAX_FILE, logging.WARNING, "Checkpoint %d is incomplete", (3,), True),
    (_ORBAX_FILE, logging.ERROR, "Restore failed", (), True),
    ("/work/crossdomain/train.py", logging.INFO, "step %d/%d", (1, 2), True),
    (_XLA_BRIDGE_FILE, logging.INFO, "Unable to initialize backend '%s': %s",
     ("tpu", "INTERNAL: Failed to open libtpu.so"), False),
    (_XLA_BRIDGE_FILE, logging.WARNING, "An NVIDIA GPU may be present on this machine", (),
     True),
    ("/site-packages/tensorflow_datasets/core/dataset_info.py", logging.INFO,
     "For '%s': fields info.[module_name] differ on disk and in the code.",
     ("fashion_mnist/3.0.1",), False),
    ("/site-packages/tensorflow_datasets/core/dataset_builder.py", logging.INFO,
     "Downloading and preparing dataset %s", ("fashion_mnist",), True),
])
def test_filter_keeps_only_useful_records(pathname, level, message, args, kept):
  record = _record(pathname, level, message, *args)
  assert cli._DropLibraryNoise().filter(record) is kept


def test_format_config_lists_override_names():
  config = ml_collections.ConfigDict({"seed": 0, "model": {"hidden": (256, 256), "tied": True},
                                      "data": {"name": "gmm", "manual_dir": None}})

  assert cli.format_config(config, overridden=["model.tied", "seed"]).splitlines() == [
      "  data.manual_dir = None",
      "  data.name = 'gmm'",
      "  model.hidden = (256, 256)",
      "  model.tied = True  # set on the command line",
      "  seed = 0  # set on the command line",
  ]


# Both programs parse their flags with cli.parse_flags, which handles
# every kind of error, so one kind per program shows that they use it.
@pytest.mark.parametrize("program, flags, override, message", [
    ("benchmark", ["--config=configs/gmm.py"], "--config.num_stepz=3",
     "unknown config field 'num_stepz'. Did you mean \"num_steps\""),
    ("evaluate", ["--npz=translations.npz", "--config=configs/gmm.py"],
     "--config.num_steps=abc", "--config.num_steps expects a whole number, such as 8000"),
])
def test_config_errors_take_one_line(program, flags, override, message):
  command = [sys.executable, "-m", f"crossdomain.{program}", *flags, override]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  assert message in result.stderr.strip().splitlines()[0]
