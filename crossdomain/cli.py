"""Helpers shared by the command-line programs."""

import logging

from absl import logging as absl_logging


class _DropLibraryInfo(logging.Filter):
  """Drop orbax's INFO records, which narrate every save and restore; keep its warnings."""

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno > logging.INFO or "/orbax/" not in record.pathname


def quiet_library_logs() -> None:
  """Keep library chatter out of the program's log; call after absl has parsed flags."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryInfo())
