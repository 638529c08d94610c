"""PNG figures of a run: sample grids, the loss graph and the toy scatter plots."""

import matplotlib

matplotlib.use("Agg")  # files only; runs are often on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from crossdomain.data.gmm import Mixture  # noqa: E402

SAMPLE_ROWS = ("A", "G_AB(A)", "G_BA(G_AB(A))", "B", "G_BA(B)", "G_AB(G_BA(B))")


def _to_unit(images: np.ndarray) -> np.ndarray:
  """Map images in [-1, 1] to [0, 1] for display."""
  return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def save_sample_grid(path: str, rows: dict[str, np.ndarray], step: int) -> None:
  """Write a grid with one labelled row per entry of SAMPLE_ROWS.

  Args:
    path: PNG file to write.
    rows: SAMPLE_ROWS name to images [columns, size, size, channels] in [-1, 1].
    step: the step shown in the title.
  """
  columns = len(rows["A"])
  figure, axes = plt.subplots(len(SAMPLE_ROWS), columns, squeeze=False,
                              figsize=(1.1 * columns + 1.4, 1.1 * len(SAMPLE_ROWS)))
  for row, name in enumerate(SAMPLE_ROWS):
    images = _to_unit(rows[name])
    for column in range(columns):
      axis = axes[row, column]
      image = images[column]
      if image.shape[-1] == 1:
        axis.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
      else:
        axis.imshow(image)
      axis.set_xticks([])
      axis.set_yticks([])
    axes[row, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
  figure.suptitle(f"step {step}")
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  plt.close(figure)


# Curves of the loss graph: metric name and legend label.
LOSS_CURVES = (
    ("train_d_loss", "discriminators (D_A + D_B)"),
    ("train_g_loss", "generators (both directions)"),
    ("train_recon_a", "reconstruction A -> B -> A"),
    ("train_recon_b", "reconstruction B -> A -> B"),
)


def save_loss_plot(path: str, history: list[dict]) -> None:
  """Write the generator, discriminator and reconstruction losses over steps."""
  figure, axis = plt.subplots(figsize=(8, 4.5))
  for name, label in LOSS_CURVES:
    points = [(record["step"], record[name]) for record in history if name in record]
    if points:
      steps, values = zip(*points)
      # Markers keep a curve of one or two points visible.
      axis.plot(steps, values, label=label, marker="o" if len(points) < 20 else None,
                markersize=3)
  axis.set_xlabel("step")
  axis.set_ylabel("loss (mean over each logging period)")
  axis.set_yscale("log")
  axis.grid(True, alpha=0.3)
  if axis.get_lines():
    axis.legend()
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


def density_contours(axis, mixture: Mixture, limits: tuple[float, float, float, float]) -> None:
  """Shade a mixture's density over limits (x_min, x_max, y_min, y_max)."""
  x_min, x_max, y_min, y_max = limits
  xs, ys = np.meshgrid(np.linspace(x_min, x_max, 200), np.linspace(y_min, y_max, 200))
  grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
  density = np.exp(mixture.log_density(grid)).reshape(xs.shape)
  axis.contourf(xs, ys, density, levels=12, cmap="Greys", alpha=0.6)


def scatter_by_mode(axis, points: np.ndarray, modes: np.ndarray, title: str) -> None:
  """Scatter points [N, 2], each in the colour of its mode."""
  colors = plt.get_cmap("tab10")(np.asarray(modes) % 10)
  axis.scatter(points[:, 0], points[:, 1], c=colors, s=6, alpha=0.7, linewidths=0)
  axis.set_title(title, fontsize=10)
  axis.set_aspect("equal")


def label_modes(axis, means: np.ndarray) -> None:
  """Write each mode's number at its mean, the numbers of the mode tables in ideal_state.json."""
  for mode, (x, y) in enumerate(np.asarray(means)):
    axis.text(x, y, str(mode), ha="center", va="center", fontsize=9, fontweight="bold",
              bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "alpha": 0.8})


def save_toy_scatter(path: str, points: dict[str, np.ndarray], modes_a: np.ndarray,
                     modes_b: np.ndarray, mixtures: tuple[Mixture, Mixture], step: int) -> None:
  """Write the four toy panels: A, B, G_AB(A) over B's density, G_BA(B) over A's.

  Each point has the colour of the mode its source point was drawn from, and
  the panels of A and B number their modes.

  Args:
    path: PNG file to write.
    points: "a", "b", "ab" and "ba" to points [N, 2].
    modes_a, modes_b: the source mode of each point of "a" and of "b".
    mixtures: the densities of A and B.
    step: the step shown in the title.
  """
  everything = np.concatenate([points[name] for name in ("a", "b", "ab", "ba")]
                              + [mixture.means for mixture in mixtures])
  low = np.percentile(everything, 0.5, axis=0) - 0.5
  high = np.percentile(everything, 99.5, axis=0) + 0.5
  limits = (low[0], high[0], low[1], high[1])
  mixture_a, mixture_b = mixtures

  figure, axes = plt.subplots(1, 4, figsize=(16, 4.4))
  scatter_by_mode(axes[0], points["a"], modes_a, "A, by mode")
  scatter_by_mode(axes[1], points["b"], modes_b, "B, by mode")
  label_modes(axes[0], mixture_a.means)
  label_modes(axes[1], mixture_b.means)
  density_contours(axes[2], mixture_b, limits)
  scatter_by_mode(axes[2], points["ab"], modes_a, "G_AB(A) over density of B,\nby mode of A")
  density_contours(axes[3], mixture_a, limits)
  scatter_by_mode(axes[3], points["ba"], modes_b, "G_BA(B) over density of A,\nby mode of B")
  for axis in axes:
    axis.set_xlim(limits[0], limits[1])
    axis.set_ylim(limits[2], limits[3])
  figure.suptitle(f"step {step}")
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


# Metrics that are drawn as reference lines on another metric's panel.
_PROBE_REFERENCES = {"subclass_probe_accuracy_real": "subclass_probe_accuracy",
                     "subclass_probe_chance": "subclass_probe_accuracy"}


def reference_panels(names) -> dict[str, str]:
  """Map each reference metric among `names` to the metric whose panel shows it.

  A floor of domain B, such as frechet_distance_floor_b, is the value of
  real B against real B, so it belongs on the panel of the translations to
  B, frechet_distance_ab. The probe on real images and its chance level
  belong on the probe's panel.
  """
  names = set(names)
  panels = {}
  for name in names:
    for suffix, direction in (("_floor_b", "ab"), ("_floor_a", "ba")):
      if name.endswith(suffix) and f"{name[:-len(suffix)]}_{direction}" in names:
        panels[name] = f"{name[:-len(suffix)]}_{direction}"
    if _PROBE_REFERENCES.get(name) in names:
      panels[name] = _PROBE_REFERENCES[name]
  return panels


def save_eval_plot(path: str, history: list[tuple[int, dict[str, float]]], metric: str,
                   best_step: int | None, restarted_at: int | None = None) -> None:
  """Write each evaluation metric over steps, one panel each, with the best step marked.

  Floors and other reference values are drawn as gray lines on the panel
  of the metric they belong to (see reference_panels). `restarted_at`, the
  step where the best-step record started again, is marked too.
  """
  all_names = {name for _, values in history for name in values}
  references = reference_panels(all_names)
  names = sorted(all_names - set(references))
  columns = min(4, len(names))
  rows = -(-len(names) // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), squeeze=False)

  def series(name):
    return zip(*[(step, values[name]) for step, values in history if name in values])

  for axis, name in zip(axes.flat, names):
    axis.plot(*series(name), marker="o", markersize=3, label=name)
    panel_references = sorted(ref for ref, panel in references.items() if panel == name)
    for reference, style in zip(panel_references, (":", "-.")):
      axis.plot(*series(reference), color="gray", linestyle=style, linewidth=1.5,
                label=reference)
    if best_step is not None:
      axis.axvline(best_step, color="tab:red", linestyle="--", linewidth=1)
    if restarted_at is not None:
      axis.axvline(restarted_at, color="black", linestyle=":", linewidth=1)
    axis.set_title(name + (" (selects the best step)" if name == metric else ""), fontsize=9)
    axis.set_xlabel("step", fontsize=8)
    axis.grid(True, alpha=0.3)
    if any(panel == name for panel in references.values()):
      axis.legend(fontsize=6)
  for axis in list(axes.flat)[len(names):]:
    axis.set_visible(False)
  title = f"evaluation metrics; dashed line: best step {best_step}"
  if restarted_at is not None:
    title += f"\ndotted line: the best-step record started again at step {restarted_at}"
  figure.suptitle(title)
  figure.tight_layout()
  figure.savefig(path, dpi=80)
  plt.close(figure)
