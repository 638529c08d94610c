"""Fields shared by every run config, and their checks.

Each file in configs/ calls `base_config()` and sets the fields of its data
and model. Every default lives here or in those files; the trainer reads
fields directly and never supplies a fallback of its own.
"""

import math
import os

import ml_collections

from crossdomain.errors import UserInputError
from crossdomain.losses import GAN_LOSSES, RECONSTRUCTION_LOSSES, VARIANTS
from crossdomain.models import COMPUTE_DTYPES
from crossdomain.models.upsample import INIT_SCHEMES, UPSAMPLE_FORMULATIONS


def base_config() -> ml_collections.ConfigDict:
  """Return the fields common to all runs, with the reference DiscoGAN's settings."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_steps = 10_000

  # Periods in steps. A period also fires at the last step.
  config.log_every = 100
  config.sample_every = 1_000
  config.checkpoint_every = 1_000
  config.keep_checkpoints = 3

  config.data = ml_collections.ConfigDict()
  config.data.name = ""
  config.data.batch_size = 64  # global, over all devices and processes
  config.data.num_sample_examples = 8  # columns of the sample grid

  config.model = ml_collections.ConfigDict()
  # True: the reconstruction legs reuse the translators (DiscoGAN). False:
  # four generator networks.
  config.model.tie_generators = True
  config.model.compute_dtype = "float32"
  # How the decoder's transposed convolutions are computed; every form is the
  # same function of the same parameters. "auto" picks, on CPU, the form
  # measured fastest for each layer's shape; the others are "subpixel",
  # "shifted_subpixel", "dilated" and "col2im". It does not reach the
  # encoders, whose input gradients on CPU always use the forms that "auto"
  # picks. See models/upsample.py.
  config.model.upsample = "auto"
  # Initial kernels of image networks: "pytorch", the reference's U(-1/sqrt(n),
  # 1/sqrt(n)), or "lecun", Flax's default. See upsample.kernel_initializer.
  config.model.init_scheme = "pytorch"
  config.model.hidden = (256, 256)  # vector domains only

  config.loss = ml_collections.ConfigDict()
  # "gan": no reconstruction; "recongan": only A -> B -> A is reconstructed;
  # "discogan": both cycles. Every variant trains both directions' GAN terms
  # and both discriminators, unlike the reference's one-directional baselines.
  config.loss.variant = "discogan"
  config.loss.gan = "bce"  # or "least_squares"
  config.loss.reconstruction = "mse"  # or "l1"
  # Adversarial part of a direction: gan_weight * GAN + feature_matching_weight
  # * feature matching, or the plain GAN loss when feature_matching is off.
  config.loss.feature_matching = True
  config.loss.gan_weight = 0.1
  config.loss.feature_matching_weight = 0.9
  # A reconstructing direction's loss is (1 - w) * adversarial + w * reconstruction,
  # where w is recon_weight_start for the first recon_curriculum_steps steps
  # and recon_weight after, or recon_weight throughout without the curriculum.
  config.loss.recon_curriculum = True
  config.loss.recon_weight_start = 0.01
  config.loss.recon_curriculum_steps = 10_000
  config.loss.recon_weight = 0.5

  # Adam with coupled L2 weight decay, as torch.optim.Adam applies it in the
  # reference implementation; one optimizer for generators, one for discriminators.
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.b2 = 0.999
  config.optimizer.weight_decay = 1e-5
  config.optimizer.eps = 1e-8  # added to the root of Adam's second moment

  # Translation quality on held-out data, measured every `every` steps and at
  # the end. The evaluated step with the best `metric` is the run's ideal
  # state. Training stops after `patience` evaluations in a row without an
  # improvement larger than `min_delta`, and never when patience is 0.
  config.eval = ml_collections.ConfigDict()
  config.eval.every = 1_000
  config.eval.metric = ""
  config.eval.patience = 0
  config.eval.min_delta = 0.0
  config.eval.max_examples = 3_000  # held-out examples per domain
  config.eval.batch_size = 256  # examples per translation call
  # Image domains: where trained evaluator classifiers are cached, and how
  # many steps a new one trains.
  config.eval.evaluator_dir = os.path.expanduser("~/.cache/crossdomain/evaluators")
  config.eval.evaluator_steps = 2_000
  config.eval.evaluator_examples = 20_000  # per domain, for A-against-B classifiers
  # Fixed apart from `seed`, so that runs of every seed are measured by the
  # same evaluator.
  config.eval.evaluator_seed = 0
  # Vector domains: share of all translated points a target mode must
  # receive, within 3 standard deviations, to count as covered.
  config.eval.min_share = 0.02

  # Which networks step s updates: update_cycle[s % len(update_cycle)], "D"
  # for both discriminators, "G" for the generators. "DGG" is the reference.
  config.update_cycle = "DGG"
  return config


def _choice(value, field: str, choices: tuple) -> None:
  if value not in choices:
    raise UserInputError(f"config.{field} must be one of {choices}, got {value!r}")


def _positive(value, field: str) -> None:
  if not (value > 0 and math.isfinite(value)):
    raise UserInputError(f"config.{field} must be positive and finite, got {value!r}")


def _not_negative(value, field: str) -> None:
  if not (value >= 0 and math.isfinite(value)):
    raise UserInputError(f"config.{field} must be finite and not negative, got {value!r}")


def _fraction(value, field: str, *, below_one: bool = False) -> None:
  """Raise UserInputError unless value lies in [0, 1], or in [0, 1) when below_one is set."""
  if not (0.0 <= value < 1.0 if below_one else 0.0 <= value <= 1.0):
    interval = "[0, 1)" if below_one else "[0, 1]"
    raise UserInputError(f"config.{field} must lie in {interval}, got {value!r}")


def _field(config: ml_collections.ConfigDict, field: str):
  """Return the value of a dotted field name, such as "eval.every"."""
  section, _, name = field.rpartition(".")
  return (config[section] if section else config)[name]


def validate(config: ml_collections.ConfigDict) -> None:
  """Raise UserInputError naming the first field whose value is invalid."""
  for field in ("num_steps", "log_every", "sample_every", "checkpoint_every",
                "keep_checkpoints", "data.batch_size", "data.num_sample_examples",
                "optimizer.learning_rate", "optimizer.eps", "eval.every", "eval.max_examples",
                "eval.batch_size", "eval.evaluator_steps", "eval.evaluator_examples"):
    _positive(_field(config, field), field)
  for field in ("optimizer.weight_decay", "loss.gan_weight", "loss.feature_matching_weight",
                "loss.recon_curriculum_steps", "eval.patience", "eval.min_delta"):
    _not_negative(_field(config, field), field)
  for field in ("optimizer.b1", "optimizer.b2"):
    _fraction(_field(config, field), field, below_one=True)
  for field in ("loss.recon_weight_start", "loss.recon_weight", "eval.min_share"):
    _fraction(_field(config, field), field)

  _choice(config.loss.variant, "loss.variant", VARIANTS)
  _choice(config.loss.gan, "loss.gan", GAN_LOSSES)
  _choice(config.loss.reconstruction, "loss.reconstruction", RECONSTRUCTION_LOSSES)
  _choice(config.model.compute_dtype, "model.compute_dtype", COMPUTE_DTYPES)
  _choice(config.model.init_scheme, "model.init_scheme", INIT_SCHEMES)
  _choice(config.model.upsample, "model.upsample", UPSAMPLE_FORMULATIONS)
  hidden = config.model.hidden
  if not (isinstance(hidden, (tuple, list)) and hidden
          and all(isinstance(width, int) and width > 0 for width in hidden)):
    raise UserInputError(f"config.model.hidden must be one or more positive layer widths, such "
                         f"as (256, 256), got {hidden!r}")

  cycle = config.update_cycle
  if not cycle or set(cycle) - {"D", "G"} or "G" not in cycle or "D" not in cycle:
    raise UserInputError(f"config.update_cycle must be a string of 'D' and 'G' containing "
                         f"both, such as 'DGG', got {cycle!r}")
