"""Measures of translation quality, as pure numpy functions.

On the toy problem the target density is known, so translated points are
scored against the target mixture's modes: which mode each point lands on,
how many modes receive points, and where each source mode goes. On images,
translated and real examples are compared through feature vectors [N, F]
from some fixed network: Fréchet distance, kernel inception distance and the
accuracy of a linear probe.
"""

import warnings

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.special

from crossdomain.data import gmm

# A point counts as on a mode when it lies within this many standard
# deviations of the mode's mean. In 2-D the share of a mode's own samples
# within 3 std is 1 - exp(-4.5), about 0.989 (chi-square, 2 degrees of freedom).
WITHIN_STDS = 3.0


# Toy mixtures.


def _check_points(points: np.ndarray, mixture: gmm.Mixture) -> np.ndarray:
  points = np.asarray(points, np.float64)
  dims = mixture.means.shape[1]
  if points.ndim != 2 or points.shape[1] != dims or len(points) == 0:
    raise ValueError(f"points must be a non-empty [N, {dims}] array to match the "
                     f"mixture's dimensions, got shape {points.shape}")
  return points


def nearest_modes(points: np.ndarray, mixture: gmm.Mixture) -> tuple[np.ndarray, np.ndarray]:
  """Find each point's nearest component mean and whether the point is on that mode.

  Args:
    points: float array [N, D] with D the mixture's dimensions.
    mixture: the target mixture.

  Returns:
    modes, int64 [N]: index of the nearest mean (the lowest index on ties).
    within, bool [N]: whether the distance to that mean is at most
      WITHIN_STDS * sqrt(variance).
  """
  points = _check_points(points, mixture)
  means = mixture.means.astype(np.float64)
  squared = np.sum(np.square(points[:, None, :] - means[None]), axis=-1)  # [N, K]
  modes = np.argmin(squared, axis=1)
  nearest_squared = squared[np.arange(len(points)), modes]
  within = nearest_squared <= WITHIN_STDS**2 * mixture.variance
  return modes, within


def mode_coverage(points: np.ndarray, mixture: gmm.Mixture, min_share: float = 0.02) -> int:
  """Count the target modes that receive at least `min_share` of all points.

  Only points within WITHIN_STDS of their nearest mode count for that mode.
  The share is relative to all N points, off-mode ones included, so a mode is
  covered when its on-mode count / N >= min_share and the count is at least 1.
  With min_share = 0.02 and N = 1000, a mode needs 20 points.

  Args:
    points: float array [N, D], e.g. translated points.
    mixture: the target mixture.
    min_share: fraction in [0, 1] of all points that a mode needs.

  Returns:
    The number of covered modes, from 0 to mixture.num_modes.
  """
  if not 0.0 <= min_share <= 1.0:
    raise ValueError(f"min_share must be a fraction in [0, 1], got {min_share}")
  modes, within = nearest_modes(points, mixture)
  counts = np.bincount(modes[within], minlength=mixture.num_modes)
  # Dividing, rather than comparing counts with min_share * N, keeps exact
  # boundaries exact: 3 / 100 == 0.03 but 0.03 * 100 > 3 in floating point.
  shares = counts / len(modes)
  return int(np.sum((counts > 0) & (shares >= min_share)))


def high_quality_share(points: np.ndarray, mixture: gmm.Mixture) -> float:
  """Return the share of points within WITHIN_STDS of their nearest mode."""
  _, within = nearest_modes(points, mixture)
  return float(np.mean(within))


def mode_mapping(source_modes: np.ndarray, points: np.ndarray, target_mixture: gmm.Mixture,
                 *, num_source_modes: int | None = None) -> np.ndarray:
  """Count how many points of each source mode land on each target mode.

  Args:
    source_modes: int array [N], the source mode each point was translated from.
    points: float array [N, D], the translated points.
    target_mixture: the mixture of the target domain, with K_target modes.
    num_source_modes: K_source, the number of table rows; defaults to
      max(source_modes) + 1.

  Returns:
    int64 array [K_source, K_target + 1]. Entry [i, j] counts points from source
    mode i that are on target mode j. The last column counts points from
    source mode i that are within WITHIN_STDS of no target mode (off-mode).
  """
  target_modes, within = nearest_modes(points, target_mixture)
  source_modes = np.asarray(source_modes)
  is_integer = np.issubdtype(source_modes.dtype, np.integer)
  if source_modes.shape != target_modes.shape or not is_integer:
    raise ValueError(f"source_modes must be an integer array with one entry per point, "
                     f"shape {target_modes.shape}, got dtype {source_modes.dtype} and "
                     f"shape {source_modes.shape}")
  if num_source_modes is None:
    num_source_modes = int(source_modes.max()) + 1
  if source_modes.min() < 0 or source_modes.max() >= num_source_modes:
    raise ValueError(f"source_modes must lie in [0, {num_source_modes}), got values from "
                     f"{source_modes.min()} to {source_modes.max()}")

  num_columns = target_mixture.num_modes + 1
  columns = np.where(within, target_modes, num_columns - 1)
  cells = source_modes.astype(np.int64) * num_columns + columns
  counts = np.bincount(cells, minlength=num_source_modes * num_columns)
  return counts.reshape(num_source_modes, num_columns)


def format_mode_mapping(table: np.ndarray) -> str:
  """Render a mode_mapping table as a markdown table, one row per source mode."""
  table = np.asarray(table)
  if table.ndim != 2 or table.shape[1] < 2:
    raise ValueError(f"table must have shape [K_source, K_target + 1] as mode_mapping "
                     f"returns it, got shape {table.shape}")
  targets = [f"target {j}" for j in range(table.shape[1] - 1)]
  header = ["source mode", *targets, "off-mode"]
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for i, row in enumerate(table):
    cells = [str(i), *(str(int(count)) for count in row)]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


# Feature sets.


def _check_features(name: str, features: np.ndarray) -> np.ndarray:
  features = np.asarray(features, np.float64)
  if features.ndim != 2 or len(features) < 2:
    raise ValueError(f"{name} must be a [N, F] array with N >= 2, got shape {features.shape}")
  if not np.all(np.isfinite(features)):
    raise ValueError(f"{name} contains NaN or infinite values")
  return features


def _check_feature_pair(features_x: np.ndarray,
                        features_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  features_x = _check_features("features_x", features_x)
  features_y = _check_features("features_y", features_y)
  if features_x.shape[1] != features_y.shape[1]:
    raise ValueError(f"features_x and features_y must have the same number of features, "
                     f"got {features_x.shape[1]} and {features_y.shape[1]}")
  return features_x, features_y


def _trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray, eps: float) -> float:
  """Return tr sqrtm(cov1 @ cov2), shifting both covariances by eps * I if needed."""
  identity = np.eye(len(cov1))
  # cov1 @ cov2 is similar to a symmetric positive semidefinite matrix, so its
  # square root has a real trace. A singular product (e.g. fewer samples than
  # features) makes sqrtm warn or return non-finite or complex values, so the
  # second try shifts both covariances, which makes them positive definite.
  for offset in (0.0, eps):
    product = (cov1 + offset * identity) @ (cov2 + offset * identity)
    with warnings.catch_warnings():
      warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
      try:
        root = scipy.linalg.sqrtm(product)
      except scipy.linalg.LinAlgWarning:
        continue
    if not np.all(np.isfinite(root)):
      continue
    # Round-off gives complex results with tiny imaginary parts. Larger ones
    # mean sqrtm failed on a near-singular product.
    if np.iscomplexobj(root):
      scale = max(float(np.max(np.abs(root))), 1e-12)
      if np.max(np.abs(root.imag)) > 1e-3 * scale:
        continue
      root = root.real
    return float(np.trace(root))
  raise ValueError(f"matrix square root of the covariance product failed even after adding "
                   f"{eps} * I to both covariances; pass a larger eps")


def frechet_distance_from_moments(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray,
                                  cov2: np.ndarray, *, eps: float = 1e-6) -> float:
  """Compute the Fréchet distance between N(mean1, cov1) and N(mean2, cov2).

  The distance is |mean1 - mean2|^2 + tr(cov1 + cov2 - 2 sqrtm(cov1 @ cov2)),
  the squared 2-Wasserstein distance between the two Gaussians.

  Args:
    mean1, mean2: float arrays [F].
    cov1, cov2: symmetric positive semidefinite float arrays [F, F].
    eps: diagonal offset added to both covariances when the square root of
      their product fails on the first try.

  Returns:
    The distance, clipped at 0 because round-off can make it slightly negative.
  """
  mean1, mean2 = np.atleast_1d(mean1).astype(np.float64), np.atleast_1d(mean2).astype(np.float64)
  cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
  dims = len(mean1)
  for name, value, shape in (("mean1", mean1, (dims,)), ("mean2", mean2, (dims,)),
                             ("cov1", cov1, (dims, dims)), ("cov2", cov2, (dims, dims))):
    if value.shape != shape:
      raise ValueError(f"{name} must have shape {shape} to match mean1, got {value.shape}")
    if not np.all(np.isfinite(value)):
      raise ValueError(f"{name} contains NaN or infinite values")

  mean_term = float(np.sum(np.square(mean1 - mean2)))
  trace_term = float(np.trace(cov1) + np.trace(cov2)) - 2.0 * _trace_sqrt_product(cov1, cov2, eps)
  return max(mean_term + trace_term, 0.0)


def frechet_distance(features_x: np.ndarray, features_y: np.ndarray, *,
                     eps: float = 1e-6) -> float:
  """Compute the Fréchet distance between Gaussians fitted to two feature sets.

  Each set's Gaussian has its sample mean and unbiased sample covariance.
  With features from an Inception network this is the FID.

  Args:
    features_x, features_y: float arrays [N_x, F] and [N_y, F], N >= 2.
    eps: see frechet_distance_from_moments.

  Returns:
    The distance, at least 0.
  """
  features_x, features_y = _check_feature_pair(features_x, features_y)
  moments = []
  for features in (features_x, features_y):
    moments.append(np.mean(features, axis=0))
    moments.append(np.atleast_2d(np.cov(features, rowvar=False)))
  return frechet_distance_from_moments(*moments, eps=eps)


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
  """Return the unbiased MMD^2 of equal-size samples under k(a, b) = (a.b / F + 1)^3."""
  size, dims = x.shape
  kernel_xx = (x @ x.T / dims + 1.0) ** 3
  kernel_yy = (y @ y.T / dims + 1.0) ** 3
  kernel_xy = (x @ y.T / dims + 1.0) ** 3
  # The unbiased estimate leaves out each sample's kernel with itself.
  within_x = (np.sum(kernel_xx) - np.trace(kernel_xx)) / (size * (size - 1))
  within_y = (np.sum(kernel_yy) - np.trace(kernel_yy)) / (size * (size - 1))
  between = np.sum(kernel_xy) / size**2
  return float(within_x + within_y - 2.0 * between)


def kernel_inception_distance(features_x: np.ndarray, features_y: np.ndarray, *,
                              num_subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
  """Compute the kernel inception distance (KID) between two feature sets.

  KID is the unbiased MMD^2 under the cubic polynomial kernel
  k(a, b) = (a.b / F + 1)^3, averaged over random subsets. Each subset draws
  subset_size rows from each set without replacement. The estimate is
  unbiased, so it can be slightly negative when both sets share a distribution.

  Args:
    features_x, features_y: float arrays [N_x, F] and [N_y, F], N >= 2.
    num_subsets: number of random subset pairs.
    subset_size: rows drawn from each set per subset, clipped to min(N_x, N_y).
    seed: seed of the subset draws, so equal seeds give equal results.

  Returns:
    (mean, std) of the per-subset MMD^2 values; std is the population
    standard deviation (ddof=0).
  """
  features_x, features_y = _check_feature_pair(features_x, features_y)
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be at least 1, got {num_subsets}")
  if subset_size < 2:
    raise ValueError(f"subset_size must be at least 2, got {subset_size}")
  size = min(subset_size, len(features_x), len(features_y))

  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    rows_x = rng.choice(len(features_x), size, replace=False)
    rows_y = rng.choice(len(features_y), size, replace=False)
    values.append(_unbiased_mmd2(features_x[rows_x], features_y[rows_y]))
  return float(np.mean(values)), float(np.std(values))


def _softmax_regression_loss(params: np.ndarray, features: np.ndarray, targets: np.ndarray,
                             num_classes: int, l2: float) -> tuple[float, np.ndarray]:
  """Return the mean cross-entropy plus 0.5 * l2 * |W|^2, and its gradient."""
  num_examples, dims = features.shape
  params = params.reshape(dims + 1, num_classes)
  weights, bias = params[:-1], params[-1]
  logits = features @ weights + bias  # [N, C]
  log_norm = scipy.special.logsumexp(logits, axis=1)
  rows = np.arange(num_examples)
  loss = np.mean(log_norm - logits[rows, targets]) + 0.5 * l2 * np.sum(np.square(weights))

  # d loss / d logits = (softmax - one_hot) / N.
  dlogits = np.exp(logits - log_norm[:, None])
  dlogits[rows, targets] -= 1.0
  dlogits /= num_examples
  grad_weights = features.T @ dlogits + l2 * weights
  grad_bias = np.sum(dlogits, axis=0)
  return float(loss), np.concatenate([grad_weights, grad_bias[None]]).ravel()


def linear_probe_accuracy(train_features: np.ndarray, train_labels: np.ndarray,
                          test_features: np.ndarray, test_labels: np.ndarray, *,
                          l2: float = 1e-3, max_iterations: int = 500) -> float:
  """Fit a linear classifier on train features and return its accuracy on test.

  The classifier is multinomial logistic regression on features standardized
  with the train mean and standard deviation. It minimizes mean cross-entropy
  plus 0.5 * l2 * |W|^2 (the bias is not penalized) by full-batch L-BFGS from
  zero weights, so the result is deterministic. With l2 > 0 the loss is
  strictly convex in W, so a converged fit predicts the same labels whatever
  the optimizer.

  Args:
    train_features, test_features: float arrays [N_train, F] and [N_test, F].
    train_labels, test_labels: int arrays [N_train] and [N_test] with any
      values, e.g. 5, 7 and 9. A test label absent from train is always wrong.
    l2: weight penalty, relative to the mean cross-entropy.
    max_iterations: maximum number of L-BFGS iterations. The fit stops earlier
      once converged, and is used as it stands if it has not converged.

  Returns:
    The share of test examples whose predicted label equals the true one.
  """
  train_features = _check_features("train_features", train_features)
  test_features = _check_features("test_features", test_features)
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  if train_features.shape[1] != test_features.shape[1]:
    raise ValueError(f"train and test features must have the same number of features, "
                     f"got {train_features.shape[1]} and {test_features.shape[1]}")
  for name, labels, features in (("train_labels", train_labels, train_features),
                                 ("test_labels", test_labels, test_features)):
    if labels.shape != (len(features),):
      raise ValueError(f"{name} must have shape ({len(features)},), one label per row, "
                       f"got {labels.shape}")
  if l2 < 0:
    raise ValueError(f"l2 must be non-negative, got {l2}")

  classes, targets = np.unique(train_labels, return_inverse=True)
  mean = np.mean(train_features, axis=0)
  std = np.std(train_features, axis=0)
  std = np.where(std > 0, std, 1.0)  # A constant feature stays 0 after centering.
  train_standard = (train_features - mean) / std
  test_standard = (test_features - mean) / std

  num_classes = len(classes)
  dims = train_standard.shape[1]
  result = scipy.optimize.minimize(
      _softmax_regression_loss, np.zeros((dims + 1) * num_classes),
      args=(train_standard, targets, num_classes, l2), jac=True, method="L-BFGS-B",
      options={"maxiter": max_iterations})
  params = result.x.reshape(dims + 1, num_classes)
  logits = test_standard @ params[:-1] + params[-1]
  predictions = classes[np.argmax(logits, axis=1)]
  return float(np.mean(predictions == test_labels))


def split_halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Split indices 0..n-1 at random into two disjoint halves of n // 2 each.

  Comparing two halves of the real data gives the floor that a metric
  reaches without any translation. For odd n one index is left out.
  """
  if n < 2:
    raise ValueError(f"n must be at least 2 to split into two halves, got {n}")
  order = np.random.default_rng(seed).permutation(n)
  half = n // 2
  return order[:half], order[half:2 * half]
