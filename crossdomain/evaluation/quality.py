"""Translation quality on held-out data: the numbers that pick a run's best step.

A measurement takes the held-out inputs of both domains and what the model
made of them, as arrays in model range:

  a, b      real examples of A and B
  ab, ba    their translations G_AB(a) and G_BA(b)
  aba, bab  the reconstructions G_BA(G_AB(a)) and G_AB(G_BA(b))

Toy mixtures are scored against their known densities, images with the
features and predictions of an evaluator classifier trained on real data,
and other vectors (CSV files) by Fréchet distances on the vectors themselves.
"""

import dataclasses
import hashlib
import json
import math
from collections.abc import Sequence

import ml_collections
import numpy as np
from absl import logging

from crossdomain import data as data_lib
from crossdomain.data import gmm
from crossdomain.errors import raise_problems
from crossdomain.evaluation import metrics
from crossdomain.evaluation.classifier import DEFAULT_BATCH_SIZE, Evaluator

Arrays = dict[str, np.ndarray]
MIN_HELD_OUT = 8  # held-out examples per domain that evaluation needs
# Below this many held-out images, each half that a floor compares has fewer
# images than the evaluator has features (128), so its covariance is singular.
RELIABLE_HELD_OUT = 256


@dataclasses.dataclass(frozen=True)
class Report:
  """Scalar metrics, and longer findings as text (for example mode tables)."""

  metrics: dict[str, float]
  details: dict[str, str]


def _cycle_mse(arrays: Arrays, domain: str, scale: float) -> float:
  """Mean squared reconstruction error of a domain, with values divided by `scale` first."""
  reconstructed = arrays[{"a": "aba", "b": "bab"}[domain]]
  difference = (reconstructed.astype(np.float64) - arrays[domain].astype(np.float64)) / scale
  return float(np.mean(np.square(difference)))


@dataclasses.dataclass(frozen=True)
class ToyQuality:
  """Scores translations of points against the known mixtures of A and B.

  Attributes:
    mixtures: the densities of A and B.
    modes_a, modes_b: the mode each held-out point of A and B was drawn from.
    min_share: share of all translated points a target mode must receive,
      on the mode, to count as covered.
  """

  mixtures: tuple[gmm.Mixture, gmm.Mixture]
  modes_a: np.ndarray
  modes_b: np.ndarray
  min_share: float = 0.02

  def metric_names(self) -> tuple[str, ...]:
    """Return the names of the metrics that each report contains."""
    return ("mode_coverage_ab", "high_quality_ab", "mode_coverage_ba", "high_quality_ba",
            "cycle_mse_a", "cycle_mse_b", "coverage_quality")

  def __call__(self, arrays: Arrays) -> Report:
    mixture_a, mixture_b = self.mixtures
    values, details, scores = {}, {}, []
    for direction, points, source_modes, target in (("ab", arrays["ab"], self.modes_a, mixture_b),
                                                    ("ba", arrays["ba"], self.modes_b, mixture_a)):
      coverage = metrics.mode_coverage(points, target, self.min_share)
      quality = metrics.high_quality_share(points, target)
      values[f"mode_coverage_{direction}"] = float(coverage)
      values[f"high_quality_{direction}"] = quality
      scores.append(coverage / target.num_modes * quality)
      table = metrics.mode_mapping(source_modes, points, target,
                                   num_source_modes=self.mixtures[direction == "ba"].num_modes)
      details[f"mode_mapping_{direction}"] = metrics.format_mode_mapping(table)
    values["cycle_mse_a"] = _cycle_mse(arrays, "a", 1.0)
    values["cycle_mse_b"] = _cycle_mse(arrays, "b", 1.0)
    # Covered share of the target modes times the on-mode share, averaged
    # over both directions: 1 when every mode is reached and no point
    # falls between modes.
    values["coverage_quality"] = float(np.mean(scores))
    return Report(values, details)


@dataclasses.dataclass(frozen=True)
class VectorQuality:
  """Fréchet distances of translated vectors of unknown density to the real ones.

  Each distance compares the Gaussians fitted to the translated and the real
  held-out vectors, so it measures their means and covariances but not, for
  example, how many modes they have. The floors compare two random halves
  of the real vectors.

  Attributes:
    seed: seed of the random halves.
  """

  seed: int = 0

  def metric_names(self) -> tuple[str, ...]:
    """Return the names of the metrics that each report contains."""
    return ("frechet_distance_ab", "frechet_distance_floor_b", "frechet_distance_ba",
            "frechet_distance_floor_a", "cycle_mse_a", "cycle_mse_b", "frechet_distance_mean")

  def __call__(self, arrays: Arrays) -> Report:
    values = {}
    for direction, target in (("ab", "b"), ("ba", "a")):
      values[f"frechet_distance_{direction}"] = metrics.frechet_distance(arrays[direction],
                                                                         arrays[target])
      first, second = metrics.split_halves(len(arrays[target]), self.seed)
      values[f"frechet_distance_floor_{target}"] = metrics.frechet_distance(
          arrays[target][first], arrays[target][second])
    values["cycle_mse_a"] = _cycle_mse(arrays, "a", 1.0)
    values["cycle_mse_b"] = _cycle_mse(arrays, "b", 1.0)
    values["frechet_distance_mean"] = (values["frechet_distance_ab"]
                                       + values["frechet_distance_ba"]) / 2
    return Report(values, {})


@dataclasses.dataclass(frozen=True)
class ImageQuality:
  """Scores translated images with an evaluator classifier's predictions and features.

  Attributes:
    evaluator: classifier trained on real images of both domains.
    classes_a, classes_b: the evaluator's classes that count as domain A and B.
    subclasses_a: the evaluator class of each held-out A image when A contains
      several classes (sandal, sneaker, ankle boot), else None.
    seed: seed of the random halves and KID subsets.
  """

  evaluator: Evaluator
  classes_a: Sequence[int]
  classes_b: Sequence[int]
  subclasses_a: np.ndarray | None = None
  seed: int = 0

  def metric_names(self) -> tuple[str, ...]:
    """Return the names of the metrics that each report contains."""
    names = []
    for direction, target in (("ab", "b"), ("ba", "a")):
      names += [f"target_accuracy_{direction}", f"frechet_distance_{direction}",
                f"kid_{direction}", f"frechet_distance_floor_{target}", f"kid_floor_{target}"]
    names += ["cycle_mse_a", "cycle_mse_b", "frechet_distance_mean"]
    if self.subclasses_a is not None:
      names += ["subclass_probe_accuracy", "subclass_probe_accuracy_real",
                "subclass_probe_chance"]
    return tuple(names)

  def _floor(self, features: np.ndarray, seed: int) -> tuple[float, float]:
    """Return Fréchet distance and KID between two random halves of real images."""
    first, second = metrics.split_halves(len(features), seed)
    kid, _ = metrics.kernel_inception_distance(features[first], features[second], seed=seed)
    return metrics.frechet_distance(features[first], features[second]), kid

  def __call__(self, arrays: Arrays) -> Report:
    logits, features = {}, {}
    for name in ("a", "b", "ab", "ba"):
      logits[name], features[name] = self.evaluator.logits_and_features(arrays[name])

    values = {}
    for direction, target, classes in (("ab", "b", self.classes_b),
                                       ("ba", "a", self.classes_a)):
      predicted = np.argmax(logits[direction], axis=1)
      values[f"target_accuracy_{direction}"] = float(np.mean(np.isin(predicted, classes)))
      values[f"frechet_distance_{direction}"] = metrics.frechet_distance(
          features[direction], features[target])
      values[f"kid_{direction}"], _ = metrics.kernel_inception_distance(
          features[direction], features[target], seed=self.seed)
      floor_distance, floor_kid = self._floor(features[target], self.seed)
      values[f"frechet_distance_floor_{target}"] = floor_distance
      values[f"kid_floor_{target}"] = floor_kid

    # Images are compared in [0, 1], the scale most implementations report.
    values["cycle_mse_a"] = _cycle_mse(arrays, "a", 2.0)
    values["cycle_mse_b"] = _cycle_mse(arrays, "b", 2.0)
    values["frechet_distance_mean"] = (values["frechet_distance_ab"]
                                       + values["frechet_distance_ba"]) / 2

    details = {}
    if self.subclasses_a is not None:
      values.update(self._subclass_probe(features["ab"], features["a"]))
      details["subclass_probe"] = (
          "A linear probe on the evaluator's features of G_AB(a) predicts the class of "
          "the source image a; a translator that sends every source to the same "
          "output scores chance, the largest class share.")
    return Report(values, details)

  def _subclass_probe(self, translated: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Measure how well the source class of each A image can be read back from its translation."""
    labels = np.asarray(self.subclasses_a)
    first, second = metrics.split_halves(len(labels), self.seed)
    probe = metrics.linear_probe_accuracy(translated[first], labels[first],
                                          translated[second], labels[second])
    on_real = metrics.linear_probe_accuracy(real[first], labels[first],
                                            real[second], labels[second])
    shares = np.unique(labels[second], return_counts=True)[1] / len(second)
    return {"subclass_probe_accuracy": probe, "subclass_probe_accuracy_real": on_real,
            "subclass_probe_chance": float(np.max(shares))}


# Data fields that locate files, which a run may read from another place, for
# example after its workdir and data were copied to another machine.
DATA_LOCATIONS = ("folder_a", "folder_b", "csv_a", "csv_b", "manual_dir", "tfds_data_dir",
                  "fashion_mnist_dir")
# Data settings that change neither the examples nor the held-out split.
_BATCHING = ("batch_size", "num_sample_examples")


def _data_key(config: ml_collections.ConfigDict, contents: str | None) -> str:
  """Return a short digest of the data, so each pair of domains gets its own evaluator.

  The data's settings and `contents` (DomainPair.contents) decide it, not
  where the files are, so folders that move keep their evaluator and a
  folder whose files change gets a new one.
  """
  fields = {name: value for name, value in config.to_dict().items()
            if name not in _BATCHING + DATA_LOCATIONS}
  if contents is not None:  # keeps the keys of data that the config fixes, such as pix2pix
    fields["contents"] = contents
  return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


# Increased whenever a change to this package changes the metrics of one
# model, so that a resumed run does not compare its evaluations with older ones.
MEASURE_VERSION = 2  # 2: A-against-B evaluators trained with label smoothing

# Fields of config.eval that change the values of an evaluation: which data,
# which evaluator and which metric ranks the steps.
_MEASURE_FIELDS = ("metric", "max_examples", "evaluator_steps", "evaluator_examples",
                   "evaluator_seed", "min_share")


def measure_settings(config: ml_collections.ConfigDict, contents: str | None = None) -> dict:
  """Return the settings that decide evaluation values and the ranking of steps, in JSON types.

  Evaluations made under other settings cannot be compared with each other:
  a run resumed with other settings starts its best-step record anew.
  `contents` is DomainPair.contents, for data found at a location.
  """
  data = json.loads(config.data.to_json())
  settings = {"version": MEASURE_VERSION, "seed": config.seed,
              **{f"data.{name}": value for name, value in sorted(data.items())
                 if name not in _BATCHING + DATA_LOCATIONS},
              **{f"eval.{field}": config.eval[field] for field in _MEASURE_FIELDS}}
  if contents is not None:
    settings["data contents"] = contents
  return settings


def measure_changes(saved: dict, current: dict, held_out: tuple[int, int]) -> list[str]:
  """Return the settings that differ between two measures, as "name: old -> new" lines.

  `held_out` is the number of held-out examples of each domain. Evaluations
  read at most that many, so eval.max_examples counts only up to it.
  Settings that `saved` lacks were added to this package after it was
  written, so they are not compared.
  """
  def effective(settings: dict, name: str):
    value = settings.get(name)
    if name == "eval.max_examples" and value is not None:
      return tuple(min(value, count) for count in held_out)
    return value

  return [f"{name}: {saved.get(name)!r} -> {current.get(name)!r}"
          for name in sorted(saved) if effective(saved, name) != effective(current, name)]


def _held_out_counts(config: ml_collections.ConfigDict,
                     domains: data_lib.DomainPair) -> tuple[int, int]:
  """Return how many held-out examples of A and of B an evaluation measures."""
  return (min(len(domains.a.test), config.eval.max_examples),
          min(len(domains.b.test), config.eval.max_examples))


def held_out_problems(config: ml_collections.ConfigDict,
                      domains: data_lib.DomainPair) -> list[str]:
  """Return one message per image domain with too few held-out images to evaluate, with its fix.

  Each real-against-real floor splits the held-out set in two halves, and a
  Fréchet distance needs at least two examples on each side.
  """
  if not domains.is_image:
    return []
  problems = []
  counts = _held_out_counts(config, domains)
  for name, domain, count in (("A", domains.a, counts[0]), ("B", domains.b, counts[1])):
    if count >= MIN_HELD_OUT:
      continue
    if config.eval.max_examples < MIN_HELD_OUT:
      remedy = "raise eval.max_examples"
    elif config.data.get("max_test_examples", MIN_HELD_OUT) < MIN_HELD_OUT:
      remedy = f"raise data.max_test_examples to {MIN_HELD_OUT} or more"
    elif "test_fraction" in config.data:
      total = domain.num_train + len(domain.test)
      # The held-out count is round(test_fraction * total), see data._hold_out.
      # One image to spare, so that removing an image does not fail the next run.
      fraction = math.ceil((MIN_HELD_OUT + 0.5) / total * 100) / 100
      held_out = round(fraction * total)
      remedy = (f"set data.test_fraction to {fraction:.2f}, which holds out {held_out} of "
                f"its {total} images and leaves {total - held_out} for training, the most "
                "that data.batch_size can then be"
                if fraction < 0.5 else f"add images: it has {total}")
    else:  # pix2pix and Fashion-MNIST hold out their validation or test split
      remedy = "add images to the dataset's validation split"
    images = "image" if count == 1 else "images"
    problems.append(f"domain {name} has {count} held-out {images} for evaluation, which "
                    f"needs at least {MIN_HELD_OUT}; {remedy}")
  return problems


def make_quality(config: ml_collections.ConfigDict, domains: data_lib.DomainPair):
  """Return the measure of translation quality that fits the run's data, or None.

  Vector domains without a known density get Fréchet distances on the
  vectors, or None when a domain holds out fewer than MIN_HELD_OUT rows.
  Image domains need an evaluator classifier. The first run trains it, in
  about a minute and a half on two CPU cores for Fashion-MNIST, and caches it
  in `config.eval.evaluator_dir`.
  """
  if domains.mixtures is not None:
    count = config.eval.max_examples
    return ToyQuality(domains.mixtures, domains.a.test_labels[:count],
                      domains.b.test_labels[:count], config.eval.min_share)
  if not domains.is_image:
    counts = _held_out_counts(config, domains)
    if min(counts) < MIN_HELD_OUT:
      logging.warning(
          "Domains A and B have %d and %d held-out rows, and evaluation needs at least %d "
          "in each; raise data.test_fraction or add rows to evaluate this run.",
          *counts, MIN_HELD_OUT)
      return None
    return VectorQuality(config.seed)

  from crossdomain.evaluation import evaluators  # TensorFlow Datasets loads slowly
  raise_problems(held_out_problems(config, domains))
  counts = _held_out_counts(config, domains)
  if min(counts) < RELIABLE_HELD_OUT:
    logging.warning(
        "Domains A and B have %d and %d held-out images for evaluation. The Fréchet "
        "distance and KID floors compare two halves of them, and below %d images they are "
        "inflated, so a translation can score below its floor. Compare distances across "
        "steps rather than with the floor, or hold out more images where the data allows.",
        *counts, RELIABLE_HELD_OUT)
  if config.data.name == "fashion_mnist":
    from crossdomain.data import fashion_mnist
    evaluator = evaluators.fashion_mnist_evaluator(
        config.eval.evaluator_dir, local_dir=config.data.fashion_mnist_dir,
        tfds_data_dir=config.data.tfds_data_dir, steps=config.eval.evaluator_steps,
        seed=config.eval.evaluator_seed)
    _warn_if_weak(evaluator, "raise eval.evaluator_steps")
    return ImageQuality(evaluator, fashion_mnist.SHOE_CLASSES, (fashion_mnist.BAG_CLASS,),
                        domains.a.test_labels[:config.eval.max_examples], config.seed)

  shape = "x".join(str(n) for n in domains.a.example_shape)
  seed = config.eval.evaluator_seed
  # The smoothing is in the key, so that evaluators cached before it was
  # used are not loaded in its place.
  key = (f"{config.data.name}_{_data_key(config.data, domains.contents)}_{shape}_"
         f"{config.eval.evaluator_steps}steps_seed{seed}_"
         f"smooth{evaluators.DOMAIN_PAIR_LABEL_SMOOTHING:g}")
  train_a = domains.a.train_sample(config.eval.evaluator_examples, seed)
  train_b = domains.b.train_sample(config.eval.evaluator_examples, seed)
  evaluator = evaluators.domain_pair_evaluator(
      config.eval.evaluator_dir, key, train_a, train_b, domains.a.test, domains.b.test,
      steps=config.eval.evaluator_steps, seed=seed)
  _warn_if_weak(evaluator, _pair_remedy(len(train_a), len(train_b),
                                         config.eval.evaluator_steps))
  return ImageQuality(evaluator, (0,), (1,), None, config.seed)


# Passes over its training images after which the A-against-B classifier is
# taken to fit them. An estimate: beyond it, more steps rarely help.
FITTED_EPOCHS = 20


def _pair_remedy(count_a: int, count_b: int, steps: int) -> str:
  """Return the advice for a weak A-against-B evaluator that trained on these image counts."""
  # The smaller domain is oversampled to the larger one's count.
  epochs = steps * DEFAULT_BATCH_SIZE / (2 * max(count_a, count_b))
  if epochs < FITTED_EPOCHS:
    return "raise eval.evaluator_steps or add images"
  return (f"add images: it trained on {count_a} images of A and {count_b} of B, each seen "
          f"about {epochs:.0f} times, so more steps would not help")


WEAK_EVALUATOR_ACCURACY = 0.9


def _warn_if_weak(evaluator: Evaluator, remedy: str) -> None:
  """Log a warning when the evaluator cannot tell the real domains apart well."""
  if evaluator.test_accuracy is not None and evaluator.test_accuracy < WEAK_EVALUATOR_ACCURACY:
    logging.warning(
        "The evaluator classifier reaches only %.1f%% test accuracy on real images, so its "
        "target accuracy and distances say little; %s.", 100 * evaluator.test_accuracy, remedy)
