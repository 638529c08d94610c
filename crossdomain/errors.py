"""Errors that mean the user's input cannot work, reported without a traceback."""


class UserInputError(ValueError):
  """A config value, file or folder that cannot work; the message says how to fix it."""
