"""One run at a time per workdir: a second run on a busy workdir stops at once.

Two runs that share a workdir would write the same metrics file and mix
their checkpoints. The lock is an exclusive `flock` on WORKDIR/.lock, which
the operating system releases when the process ends, even if it is killed.
"""

import contextlib
import os
import re
import shutil
import socket

from absl import logging

from crossdomain.errors import UserInputError

try:
  import fcntl
except ImportError:  # Windows has no flock; runs there are not locked.
  fcntl = None

LOCK_FILENAME = ".lock"


def check_path(workdir: str) -> None:
  """Raise UserInputError if `workdir` names something other than a local or mounted folder."""
  # Metrics, figures and the lock are written with plain file calls, which
  # would turn gs://bucket/run into a local folder named gs:.
  if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", workdir):
    raise UserInputError(f"--workdir {workdir} is a URL, but the run writes to a folder; mount "
                         "the bucket (for Cloud Storage, with gcsfuse) and pass the mounted path")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserInputError(f"--workdir {workdir} is a file; pass a folder for the run")


@contextlib.contextmanager
def hold(workdir: str):
  """Hold the workdir's lock for the body of a with statement.

  A workdir that this call created and that contains only the lock at
  the end, as after an error in setup, is removed again.

  Raises:
    UserInputError: the workdir is a file or cannot be created, or another
      process has the lock.
  """
  check_path(workdir)
  if fcntl is None:
    yield
    return
  created = not os.path.exists(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise UserInputError(f"failed to create --workdir {workdir}: {error.strerror}; pass a folder "
                         "that this user can write to") from None
  path = os.path.join(workdir, LOCK_FILENAME)
  with open(path, "a+") as handle:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      owner = handle.read().strip() or "another process"
      raise UserInputError(f"{workdir} is in use by another run ({owner}); wait for it to "
                           "end, or pass another --workdir") from None
    except OSError as error:  # some network file systems do not support flock
      logging.warning("Could not lock %s (%s); make sure no other run uses this workdir.",
                      workdir, error)
    handle.seek(0)
    handle.truncate()
    handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    try:
      yield
    finally:
      # The file stays, because removing it would let two runs lock different files.
      handle.seek(0)
      handle.truncate()
      if created and os.listdir(workdir) == [LOCK_FILENAME]:
        shutil.rmtree(workdir)
