"""Helpers shared by the command-line programs."""

import logging
import sys
from collections.abc import Iterable

import ml_collections
from absl import logging as absl_logging


# INFO records of other libraries that give a user nothing to act on, by
# the end of the file that logs them and the start of the message. JAX notes
# each optional backend it could not start, such as the TPU on a machine
# without one. TFDS notes that Fashion-MNIST prepared from Debian's files
# names this package's builder module.
_DROPPED_INFO = (("/jax/_src/xla_bridge.py", "Unable to initialize backend"),
                 ("/tensorflow_datasets/core/dataset_info.py", "For 'fashion_mnist/"))


class _DropLibraryNoise(logging.Filter):
  """Drop orbax's INFO records, which narrate every save and restore, and _DROPPED_INFO."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno > logging.INFO:
      return True
    if "/orbax/" in record.pathname:
      return False
    return not any(record.pathname.endswith(path) and record.getMessage().startswith(start)
                   for path, start in _DROPPED_INFO)


def quiet_library_logs() -> None:
  """Keep library chatter out of the program's log; call after absl has parsed flags."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryNoise())


def format_config(config: ml_collections.ConfigDict, overridden: Iterable[str] = ()) -> str:
  """Return one line per config field: its --config.FIELD override name and its Python value.

  Fields named in `overridden` are marked as set on the command line.
  """
  overridden = set(overridden)

  def lines(tree: dict, prefix: str):
    for name, value in sorted(tree.items()):
      field = f"{prefix}{name}"
      if isinstance(value, dict):
        yield from lines(value, f"{field}.")
      else:
        mark = "  # set on the command line" if field in overridden else ""
        yield f"  {field} = {value!r}{mark}"

  return "\n".join(lines(config.to_dict(), ""))


def quiet_exit_after_error() -> None:
  """Keep Python from printing tracebacks of leftover work as the program exits after an error.

  A failed checkpoint read leaves orbax's other reads as coroutines and
  asyncio tasks, which Python and asyncio report one by one at exit, under
  the one-line error.
  NOTE: this hides what orbax leaves behind and does not stop it: the other
  reads of the failed restore still run until the process exits.
  """
  sys.unraisablehook = lambda unraisable: None
  logging.getLogger("asyncio").setLevel(logging.CRITICAL)
