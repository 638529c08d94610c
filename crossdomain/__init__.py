"""Unpaired cross-domain translation with coupled GANs (DiscoGAN) in JAX."""
