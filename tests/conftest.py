"""Test settings: one CPU device, quiet TensorFlow, a fast compiler, no network but loopback."""

import ipaddress
import os
import socket

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests run tiny shapes, where XLA's optimization passes cost more than they save.
jax.config.update("jax_disable_most_optimizations", True)
# In-process runs are the one-device references of the data-parallel tests,
# even when JAX_NUM_CPU_DEVICES is set. Those tests start several devices in
# other processes.
jax.config.update("jax_num_cpu_devices", 1)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
  """Fail any test that resolves or connects to a host other than loopback, so none downloads."""
  original_getaddrinfo = socket.getaddrinfo
  original_connect = socket.socket.connect

  def is_loopback(host):
    if host in ("localhost", None):
      return True
    try:
      return ipaddress.ip_address(host).is_loopback
    except ValueError:
      return False

  def guarded_getaddrinfo(host, *args, **kwargs):
    if not is_loopback(host):
      raise AssertionError(f"test tried to resolve host {host!r}")
    return original_getaddrinfo(host, *args, **kwargs)

  def guarded_connect(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
      raise AssertionError(f"test tried to connect to {address!r}")
    return original_connect(sock, address)

  monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
  monkeypatch.setattr(socket.socket, "connect", guarded_connect)


def pytest_collection_modifyitems(items):
  """Run the tests marked slow first, so that the xdist workers finish together.

  A slow test collected last would keep one worker busy for a minute or more
  after the other has run out of tests.
  """
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
