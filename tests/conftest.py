"""Test settings: CPU only, quiet TensorFlow, and a fast compiler."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

# Tests run tiny shapes, where XLA's optimization passes cost more than they save.
jax.config.update("jax_disable_most_optimizations", True)
