"""The train state and the pure update steps of a coupled GAN.

A step updates either both discriminators or all generators on one batch
of each domain, and advances `step` by one. Each differentiates only the
networks it updates: the discriminator step sees translations as constants,
and the generator step takes no discriminator weight gradients.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from crossdomain import losses
from crossdomain.models import Networks

Params = dict
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  """Everything a run needs to continue: parameters, statistics, optimizers, counters.

  Attributes:
    step: updates done so far, discriminator and generator updates alike.
    rng: raw uint32 PRNG key of the run. The DiscoGAN networks have no
      stochastic layers, so the steps carry it unchanged.
    generator_params, generator_stats: per generator parameter set ('g_ab',
      'g_ba', untied also 'r_ab', 'r_ba'), its parameters and batch-norm
      running averages.
    discriminator_params, discriminator_stats: the same for 'd_a' and 'd_b'.
    generator_opt_state, discriminator_opt_state: the two Adam states.
  """

  step: jax.Array
  rng: jax.Array
  generator_params: Params
  generator_stats: Params
  discriminator_params: Params
  discriminator_stats: Params
  generator_opt_state: optax.OptState
  discriminator_opt_state: optax.OptState


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Return Adam with coupled L2 weight decay (the gradient gets decay * params)."""
  return optax.chain(
      optax.add_decayed_weights(config.weight_decay),
      optax.scale_by_adam(b1=config.b1, b2=config.b2, eps=config.eps),
      optax.scale_by_learning_rate(config.learning_rate))


def _input_shape(name: str, shape_a, shape_b):
  """Return the example shape that a parameter set takes as input."""
  # 'g_ab', 'r_ab' and 'd_a' read domain A; 'g_ba', 'r_ba' and 'd_b' read B.
  reads_a = name.endswith("ab") or name == "d_a"
  return shape_a if reads_a else shape_b


def init_state(networks: Networks, config: ml_collections.ConfigDict,
               shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> TrainState:
  """Initialize every network from `config.seed`; the same seed gives the same state."""
  rng = jax.random.PRNGKey(config.seed)
  modules = {**networks.generators, **networks.discriminators}
  params, stats = {}, {}
  for index, (name, module) in enumerate(sorted(modules.items())):
    example = jnp.zeros((1, *_input_shape(name, shape_a, shape_b)), jnp.float32)
    variables = module.init(jax.random.fold_in(rng, index), example, train=False)
    params[name] = variables["params"]
    stats[name] = variables.get("batch_stats", {})

  def select(tree, names):
    return {name: tree[name] for name in names}

  generator_names = sorted(networks.generators)
  discriminator_names = sorted(networks.discriminators)
  optimizer = make_optimizer(config.optimizer)
  generator_params = select(params, generator_names)
  discriminator_params = select(params, discriminator_names)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      # This key differs from every initialization key, so a stochastic layer
      # added later cannot reuse one.
      rng=jax.random.fold_in(rng, len(modules)),
      generator_params=generator_params,
      generator_stats=select(stats, generator_names),
      discriminator_params=discriminator_params,
      discriminator_stats=select(stats, discriminator_names),
      generator_opt_state=optimizer.init(generator_params),
      discriminator_opt_state=optimizer.init(discriminator_params))


def _apply(module, params, stats, x, train: bool):
  """Run a module; in training, also return its updated batch-norm statistics."""
  variables = {"params": params, "batch_stats": stats} if stats else {"params": params}
  if train and stats:
    output, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    return output, updates["batch_stats"]
  return module.apply(variables, x, train=train), stats


class _Generators:
  """Apply generator roles in training mode, threading batch-norm statistics.

  A tied parameter set used twice in one step updates its running averages
  twice, once per call, as the reference implementation does.
  """

  def __init__(self, networks: Networks, params: Params, stats: Params):
    self.networks, self.params, self.stats = networks, params, dict(stats)

  def __call__(self, role: str, x: jax.Array) -> jax.Array:
    name = self.networks.roles[role]
    y, self.stats[name] = _apply(self.networks.generators[name], self.params[name],
                                 self.stats[name], x, train=True)
    return y


def discriminator_step(state: TrainState, batch_a: jax.Array, batch_b: jax.Array, *,
                       networks: Networks, config: ml_collections.ConfigDict
                       ) -> tuple[TrainState, Metrics]:
  """Update D_A and D_B to score real examples 1 and translations 0."""
  # Generators run in training mode, as the reference does, but their
  # statistics are updated only by generator steps.
  generators = _Generators(networks, state.generator_params, state.generator_stats)
  fake_b = jax.lax.stop_gradient(generators("ab", batch_a))
  fake_a = jax.lax.stop_gradient(generators("ba", batch_b))

  def loss_fn(params):
    stats = dict(state.discriminator_stats)
    metrics = {}
    for domain, real, fake in (("a", batch_a, fake_a), ("b", batch_b, fake_b)):
      name = f"d_{domain}"
      module = networks.discriminators[name]
      (real_logits, _), stats[name] = _apply(module, params[name], stats[name], real, True)
      (fake_logits, _), stats[name] = _apply(module, params[name], stats[name], fake, True)
      metrics[f"d_loss_{domain}"] = losses.discriminator_loss(real_logits, fake_logits,
                                                              config.loss.gan)
      metrics[f"d_real_score_{domain}"] = losses.discriminator_score(real_logits,
                                                                     config.loss.gan)
      metrics[f"d_fake_score_{domain}"] = losses.discriminator_score(fake_logits,
                                                                     config.loss.gan)
    total = metrics["d_loss_a"] + metrics["d_loss_b"]
    return total, (stats, metrics)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (total, (stats, metrics)), grads = grad_fn(state.discriminator_params)
  updates, opt_state = make_optimizer(config.optimizer).update(
      grads, state.discriminator_opt_state, state.discriminator_params)
  params = optax.apply_updates(state.discriminator_params, updates)

  metrics.update(d_loss=total, d_grad_norm=optax.tree.norm(grads))
  state = state.replace(step=state.step + 1, discriminator_params=params,
                        discriminator_stats=stats, discriminator_opt_state=opt_state)
  return state, metrics


def trained_generators(networks: Networks, variant: str) -> set[str]:
  """Return the generator parameter sets that a loss variant trains.

  Every variant trains both translators. An untied reconstruction network
  ('r_ba' for A -> B -> A, 'r_ab' for B -> A -> B) is trained only by the
  variants that reconstruct its cycle, so `gan` trains neither and `recongan`
  only 'r_ba'.
  """
  roles = ["ab", "ba"]
  roles += [f"{domain}{other}{domain}" for domain, other in (("a", "b"), ("b", "a"))
            if losses.reconstructs(variant, domain)]
  return {networks.roles[role] for role in roles}


def generator_step(state: TrainState, batch_a: jax.Array, batch_b: jax.Array, *,
                   networks: Networks, config: ml_collections.ConfigDict
                   ) -> tuple[TrainState, Metrics]:
  """Update the generators: translations fool the discriminators, cycles reconstruct."""
  weight = losses.reconstruction_weight(state.step, config.loss)

  def discriminate(domain, x):
    name = f"d_{domain}"
    # Discriminators score in training mode, with the statistics of this
    # batch; their running averages are updated only by discriminator steps.
    (logits, features), _ = _apply(networks.discriminators[name],
                                   state.discriminator_params[name],
                                   state.discriminator_stats[name], x, train=True)
    return logits, features

  def loss_fn(params):
    generators = _Generators(networks, params, state.generator_stats)
    real = {"a": batch_a, "b": batch_b}
    fake = {"b": generators("ab", batch_a), "a": generators("ba", batch_b)}
    reconstructed = {"a": generators("aba", fake["b"]), "b": generators("bab", fake["a"])}

    # Direction A -> B -> A: D_B judges fake["b"], and reconstructed["a"]
    # must match real["a"]. Metrics are named by the domain they concern.
    metrics = {}
    total = jnp.zeros((), jnp.float32)
    for source, target in (("a", "b"), ("b", "a")):
      fake_logits, fake_features = discriminate(target, fake[target])
      gan = losses.generator_gan_loss(fake_logits, config.loss.gan)
      if config.loss.feature_matching:
        _, real_features = discriminate(target, real[target])
        feature_matching = losses.feature_matching_loss(real_features, fake_features)
      else:
        feature_matching = jnp.zeros((), jnp.float32)
      recon = losses.reconstruction_loss(real[source], reconstructed[source],
                                         config.loss.reconstruction)

      total += losses.direction_loss(gan, feature_matching, recon, weight,
                                     losses.reconstructs(config.loss.variant, source),
                                     config.loss)
      metrics[f"gan_{target}"] = gan
      metrics[f"feature_matching_{target}"] = feature_matching
      metrics[f"recon_{source}"] = recon
    return total, (generators.stats, metrics)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  (total, (stats, metrics)), grads = grad_fn(state.generator_params)
  updates, opt_state = make_optimizer(config.optimizer).update(
      grads, state.generator_opt_state, state.generator_params)
  # Weight decay alone would move a parameter set that no loss term reaches
  # by about the learning rate per step, because Adam normalizes its gradient.
  trained = trained_generators(networks, config.loss.variant)
  updates = {name: update if name in trained else jax.tree.map(jnp.zeros_like, update)
             for name, update in updates.items()}
  params = optax.apply_updates(state.generator_params, updates)

  metrics.update(g_loss=total, g_grad_norm=optax.tree.norm(grads))
  # Without a trained cycle the weight is unused, so it is not logged. The
  # reconstruction errors still are, as a measure.
  if any(losses.reconstructs(config.loss.variant, domain) for domain in ("a", "b")):
    metrics["recon_weight"] = weight
  state = state.replace(step=state.step + 1, generator_params=params,
                        generator_stats=stats, generator_opt_state=opt_state)
  return state, metrics


def translate(networks: Networks, params: Params, stats: Params, batch_a: jax.Array,
              batch_b: jax.Array) -> dict[str, jax.Array]:
  """Translate and reconstruct both domains in inference mode.

  Returns:
    'ab', 'aba', 'ba', 'bab': G_AB(a), its reconstruction, G_BA(b) and its
    reconstruction, each shaped like its input.
  """
  def run(role, x):
    name = networks.roles[role]
    output, _ = _apply(networks.generators[name], params[name], stats[name], x, train=False)
    return output

  ab, ba = run("ab", batch_a), run("ba", batch_b)
  return {"ab": ab, "aba": run("aba", ab), "ba": ba, "bab": run("bab", ba)}

