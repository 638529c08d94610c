"""Errors that mean the user's input cannot work, reported without a traceback."""


class UserInputError(ValueError):
  """A config value, file or folder that cannot work; the message says how to fix it."""


def raise_problems(problems: list[str]) -> None:
  """Raise one UserInputError that names every problem, so that one run reports them all."""
  if problems:
    raise UserInputError(". Also, ".join(problems))
