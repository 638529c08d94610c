"""Compare gan, recongan and discogan over several seeds, and write a results page.

    uv run python -m experiments.compare_variants --datasets=gmm,gmm_ring,fashion \\
        --seeds=3 --fashion_steps=1000

Each run trains with early stopping off, so every variant gets the same
steps, and reports the metrics of its ideal state: the evaluated step with
the best `eval.metric` (see crossdomain/evaluation/selection.py). The toy
figure shows G_AB(A) over B's density for each variant, as in the DiscoGAN
paper's mixture experiment. The page goes to WORKDIR/report/RESULTS.md;
docs/RESULTS.md contains such a page with notes added by hand.
"""

import os
import time

import matplotlib
from absl import app, flags, logging

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from crossdomain import cli, data as data_lib, plotting, translate  # noqa: E402
from crossdomain.data import pipeline  # noqa: E402
from experiments import runs  # noqa: E402
from experiments.runs import CONFIGS, REPORTED, VARIANTS, mean_std, run_one  # noqa: E402

_DATASETS = flags.DEFINE_list("datasets", ["gmm", "gmm_ring"], f"Any of {sorted(CONFIGS)}.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per variant: 0, 1, ...")
_FASHION_SEEDS = flags.DEFINE_integer("fashion_seeds", None, "Seeds per variant for "
                                      "Fashion-MNIST, when fewer fit the time; default --seeds.")
_FASHION_STEPS = flags.DEFINE_integer("fashion_steps", 1_000, "Training steps of each "
                                      "Fashion-MNIST run.")
_WORKDIR = flags.DEFINE_string("workdir", runs.DEFAULT_WORKDIR, "Folder for the runs.")
_TOY_STEPS = flags.DEFINE_integer("toy_steps", None, "Training steps of each toy run; "
                                  "default the toy config's.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Folder for RESULTS.md and its figures; default WORKDIR/report. "
    "docs/RESULTS.md was copied from such a page and extended by hand, so write elsewhere.")


def results_table(dataset: str, results: dict) -> str:
  kind = "image" if dataset == "fashion" else "toy"
  names = REPORTED[kind]
  lines = ["| variant | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for variant in VARIANTS:
    runs = results[variant]
    cells = [mean_std([run["metrics"][name] for run in runs]) for name in names]
    lines.append(f"| {variant} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def toy_figure(dataset: str, results: dict, path: str) -> None:
  """G_AB(A) over B's density for each variant, seed 0, at its ideal state."""
  config = CONFIGS[dataset]()
  domains = data_lib.load(config.data, config.seed)
  inputs = pipeline.to_model_range(domains.a.test).numpy()
  figure, axes = plt.subplots(1, len(VARIANTS), figsize=(5 * len(VARIANTS), 4.6))
  limits = (-3.5, 3.5, -3.5, 3.5)
  for axis, variant in zip(axes, VARIANTS):
    run = results[variant][0]
    translator = translate.load_translator(run["workdir"], "best")
    points = translator(inputs, "a2b")["translated"]
    plotting.density_contours(axis, domains.mixtures[1], limits)
    coverage = run["metrics"]["mode_coverage_ab"]
    plotting.scatter_by_mode(axis, points, domains.a.test_labels,
                             f"{variant}: G_AB(A), step {run['step']}\n"
                             f"{coverage:.0f} of {domains.mixtures[1].num_modes} B modes covered")
    axis.set_xlim(*limits[:2])
    axis.set_ylim(*limits[2:])
  figure.tight_layout()
  figure.savefig(path, dpi=90)
  plt.close(figure)


def main(argv):
  del argv
  cli.quiet_library_logs()
  runs.check_flags(_DATASETS.value, _SEEDS.value, _FASHION_SEEDS.value)
  output = _OUTPUT.value or os.path.join(_WORKDIR.value, "report")
  os.makedirs(os.path.join(output, "figures"), exist_ok=True)
  started = time.perf_counter()
  sections = []
  for dataset in _DATASETS.value:
    seeds = runs.seeds_for(dataset, _SEEDS.value, _FASHION_SEEDS.value)
    results = {variant: [run_one(dataset, variant, seed, root=_WORKDIR.value,
                                 fashion_steps=_FASHION_STEPS.value,
                                 toy_steps=_TOY_STEPS.value)
                         for seed in range(seeds)]
               for variant in VARIANTS}
    seconds = sum(run["seconds"] for runs in results.values() for run in runs)
    text = [f"## {dataset}", "",
            f"{seeds} seed(s) per variant, mean ± standard deviation at each run's ideal "
            f"state; {seconds / 60:.1f} minutes of training in all.", "",
            results_table(dataset, results), ""]
    if dataset != "fashion":
      name = f"figures/{dataset}_variants.png"
      toy_figure(dataset, results, os.path.join(output, name))
      text += [f"![G_AB(A) per variant]({name})", ""]
    steps = sorted({run["step"] for runs in results.values() for run in runs})
    text += [f"Ideal-state steps chosen: {steps}.", ""]
    sections.append("\n".join(text))
    logging.info("%s done in %.1f minutes", dataset, seconds / 60)

  header = ["# Results: gan, recongan and discogan", "",
            runs.provenance("compare_variants", _DATASETS.value, _SEEDS.value,
                            _FASHION_STEPS.value, _FASHION_SEEDS.value, _TOY_STEPS.value,
                            _WORKDIR.value, time.perf_counter() - started)
            + " The training times below count each run once.", "",
            "`gan` trains no reconstruction, `recongan` reconstructs A -> B -> A only, "
            "`discogan` both cycles. All three train the GAN terms of both directions "
            "and both discriminators, unlike the reference script's baselines, which train "
            "only A -> B (see the README's Losses section). Metrics are defined in "
            "crossdomain/evaluation/quality.py. Image cycle errors are in [0, 1] pixel "
            "units. A Fréchet floor is the distance between two random halves of the real "
            "held-out images. It depends on the seed that draws the halves and on how many "
            "images there are, so it differs between runs and between sections of this "
            "page.", ""]
  path = os.path.join(output, "RESULTS.md")
  with open(path, "w") as handle:
    handle.write("\n".join(header + sections))
  logging.info("Wrote %s", path)


if __name__ == "__main__":
  app.run(main)
