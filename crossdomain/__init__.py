"""Unpaired cross-domain translation with coupled GANs (DiscoGAN) in JAX."""

import os


def _set_xla_cpu_flags() -> None:
  """Route XLA CPU convolutions through the faster fused path, before JAX starts.

  By default XLA's CPU backend (jaxlib 0.10) hands each convolution to YNNPACK
  as a separate fusion, which made the generator update 2.4x slower at
  32x32 in our measurements (0.57 s against 1.35 s per step on 2 cores).
  The flag only takes effect if set before JAX initializes its backends.
  """
  flag = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
  current = os.environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" not in current:
    os.environ["XLA_FLAGS"] = f"{current} {flag}".strip()


_set_xla_cpu_flags()
