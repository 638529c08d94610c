"""Turn SIGTERM and SIGINT into a request that the training loop honours between steps.

Preemptible cloud VMs send SIGTERM shortly before they stop. The loop
finishes its step, writes a checkpoint, waits for it to reach the disk and
returns, so the next start resumes there. Before the loop starts, Ctrl-C
raises KeyboardInterrupt (see `install_interrupt_redelivery`).
"""

import _thread
import os
import signal
import sys
import threading
import time

from absl import logging

_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# A signal this soon after the first counts as a copy of it, not as a second request.
REPEAT_SECONDS = 1.0

# Delay before a lost Ctrl-C is raised again.
_REDELIVERY_SECONDS = 0.01


def _redeliver_interrupts(previous_hook):
  """Wrap sys.unraisablehook so that a KeyboardInterrupt that Python drops is raised again."""

  def hook(unraisable) -> None:
    if unraisable.exc_type is None or not issubclass(unraisable.exc_type, KeyboardInterrupt):
      previous_hook(unraisable)
      return
    try:
      # After a short delay, so that the callback that dropped it has returned.
      threading.Timer(_REDELIVERY_SECONDS, _thread.interrupt_main).start()
    except RuntimeError:
      # Python starts no new threads while it shuts down, and then the program ends anyway.
      pass

  return hook


def install_interrupt_redelivery() -> None:
  """Make Ctrl-C stop a program every time, also while its libraries import.

  Python drops an exception raised in a garbage collector callback, a
  weakref callback or a __del__ method, and reports it to
  sys.unraisablehook. JAX runs a Python callback at every garbage
  collection, and collections are frequent while the libraries import. So
  Python's SIGINT handler often raised KeyboardInterrupt there. In our
  measurements on two cores, Ctrl-C during the first seconds was lost in 4
  of 7 tries. This hook sends SIGINT to the main thread again instead. A
  SIGINT that the parent process set to be ignored stays ignored.
  """
  if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    sys.unraisablehook = _redeliver_interrupts(sys.unraisablehook)


class StopRequest:
  """Context manager whose `requested` becomes true on SIGTERM or SIGINT.

  A second signal while the first is being honoured ends the process with
  the signal's default action, so pressing Ctrl-C twice still kills a run
  that hangs. Signals within REPEAT_SECONDS of the first count as copies of
  it. Handlers can only be installed from the main thread;
  elsewhere, the context manager installs nothing.
  """

  def __init__(self):
    self.requested = False
    self.signal_name = None
    self._first_time = 0.0
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    if self.requested and time.monotonic() - self._first_time < REPEAT_SECONDS:
      # One Ctrl-C can arrive twice: from the terminal to the process group,
      # and forwarded by a launcher such as `uv run`.
      logging.info("%s again within %.0f s: taken as the same request", name, REPEAT_SECONDS)
      return
    if self.requested:
      # The default action of SIGTERM and SIGINT ends the process at once,
      # even while a step or a save hangs.
      logging.warning("Second %s: exiting at once, without a checkpoint", name)
      signal.signal(signum, signal.SIG_DFL)
      os.kill(os.getpid(), signum)
      return
    logging.warning("%s received: finishing this step, then saving a checkpoint", name)
    self.requested, self.signal_name = True, name
    self._first_time = time.monotonic()

  def __enter__(self) -> "StopRequest":
    if threading.current_thread() is threading.main_thread():
      for signum in _SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()
