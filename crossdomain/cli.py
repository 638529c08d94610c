"""Helpers shared by the command-line programs."""

import logging

import ml_collections
from absl import logging as absl_logging


class _DropLibraryNoise(logging.Filter):
  """Drop orbax's INFO records and JAX's note on absent backends.

  Orbax narrates every save and restore. JAX notes at INFO level each
  optional backend it could not start, such as the TPU on a machine
  without one.
  """

  def filter(self, record: logging.LogRecord) -> bool:
    if record.pathname.endswith("/jax/_src/xla_bridge.py"):
      return not (record.levelno <= logging.INFO
                  and record.getMessage().startswith("Unable to initialize backend"))
    return "/orbax/" not in record.pathname or record.levelno > logging.INFO


def quiet_library_logs() -> None:
  """Keep library chatter out of the program's log; call after absl has parsed flags."""
  absl_logging.get_absl_handler().addFilter(_DropLibraryNoise())


def format_config(config: ml_collections.ConfigDict) -> str:
  """Return one line per config field: its --config.FIELD override name and its Python value."""
  def lines(tree: dict, prefix: str):
    for name, value in sorted(tree.items()):
      if isinstance(value, dict):
        yield from lines(value, f"{prefix}{name}.")
      else:
        yield f"  {prefix}{name} = {value!r}"

  return "\n".join(lines(config.to_dict(), ""))
