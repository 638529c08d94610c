"""Detect non-finite losses and parameters before they reach a checkpoint."""

import jax
import jax.numpy as jnp
import numpy as np

# The network each metric of the steps belongs to.
_NETWORK_OF_METRIC = {
    "d_loss": "D_A and D_B", "d_loss_a": "D_A", "d_loss_b": "D_B", "d_grad_norm": "D_A and D_B",
    "d_real_score_a": "D_A", "d_fake_score_a": "D_A", "d_real_score_b": "D_B",
    "d_fake_score_b": "D_B", "g_loss": "the generators", "g_grad_norm": "the generators",
    "gan_b": "G_AB", "gan_a": "G_BA",
    "feature_matching_b": "G_AB", "feature_matching_a": "G_BA",
    "recon_a": "G_AB and G_BA (cycle A -> B -> A)",
    "recon_b": "G_BA and G_AB (cycle B -> A -> B)",
}


_LOSSES = ("d_loss", "d_loss_a", "d_loss_b", "g_loss", "gan_a", "gan_b", "feature_matching_a",
           "feature_matching_b", "recon_a", "recon_b")


class TrainingDivergedError(FloatingPointError):
  """A loss or a parameter became NaN or infinite."""


def check_metrics(pending: list[tuple[int, dict]]) -> None:
  """Raise TrainingDivergedError at the first step whose metrics are not finite.

  Args:
    pending: (step number, that step's metrics) pairs in step order; the
      step number counts the updates done after that step.
  """
  for step, metrics in jax.device_get(pending):
    for name, value in sorted(metrics.items()):
      if not np.all(np.isfinite(value)):
        network = _NETWORK_OF_METRIC.get(name, "the networks")
        kind = "loss" if name in _LOSSES else "metric"
        raise TrainingDivergedError(
            f"{kind} {name} of {network} is {float(value)} at step {step}, so training "
            f"stopped before saving it. Lower optimizer.learning_rate and run the same "
            f"command again: it resumes from the latest checkpoint, if any.")


@jax.jit
def _finite_per_network(state) -> dict[str, jax.Array]:
  groups = {**{f"parameters of {name}": tree for name, tree in state.generator_params.items()},
            **{f"parameters of {name}": tree
               for name, tree in state.discriminator_params.items()},
            **{f"batch statistics of {name}": tree
               for name, tree in state.generator_stats.items()},
            **{f"batch statistics of {name}": tree
               for name, tree in state.discriminator_stats.items()}}
  return {name: jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf))
                                   for leaf in jax.tree.leaves(tree)] or [True]))
          for name, tree in groups.items()}


def check_state(state) -> None:
  """Raise TrainingDivergedError naming each network whose arrays are not all finite."""
  finite = jax.device_get(_finite_per_network(state))
  broken = sorted(name for name, ok in finite.items() if not ok)
  if broken:
    raise TrainingDivergedError(
        f"non-finite values in {', '.join(broken)} at step {int(state.step)}, so training "
        f"stopped before saving them. Lower optimizer.learning_rate and run the same "
        f"command again: it resumes from the latest checkpoint, if any.")
