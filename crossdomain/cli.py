"""Helpers shared by the command-line programs."""

import logging

from absl import logging as absl_logging

# translate and evaluate open checkpoints read-only on purpose, and orbax
# warns about that on every open.
_EXPECTED_ORBAX_WARNING = "Given directory is read only"


class _DropLibraryNoise(logging.Filter):
  """Drop orbax's INFO records, which narrate every save and restore, and its read-only warning."""

  def filter(self, record: logging.LogRecord) -> bool:
    if "/orbax/" not in record.pathname:
      return True
    if record.levelno <= logging.INFO:
      return False
    return not record.getMessage().startswith(_EXPECTED_ORBAX_WARNING)


def quiet_library_logs() -> None:
  """Keep library chatter out of the program's log; call after absl has parsed flags."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryNoise())
