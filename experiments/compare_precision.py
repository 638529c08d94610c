"""Train discogan in float32 and in bfloat16 over several seeds, and write a results page.

    uv run python -m experiments.compare_precision --datasets=gmm,gmm_ring,fashion \\
        --seeds=3 --fashion_seeds=2 --fashion_steps=600

bfloat16 runs compute the networks in bfloat16 and keep parameters,
optimizer state and losses in float32 (`model.compute_dtype`). Runs are
those of experiments/runs.py, in the same folders, so its
finished float32 discogan runs are reused. The table puts the two dtypes
side by side, each as mean ± standard deviation over seeds at the runs'
ideal states, with the training time per step. The page goes to
WORKDIR/report/PRECISION.md; docs/PRECISION.md contains such a page with notes
added by hand.
"""

import os
import time

from absl import app, flags, logging

from crossdomain import cli
from experiments import runs

DTYPES = ("float32", "bfloat16")
VARIANT = "discogan"

_DATASETS = flags.DEFINE_list("datasets", ["gmm", "gmm_ring"],
                              f"Any of {sorted(runs.CONFIGS)}.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per dtype: 0, 1, ...")
_FASHION_SEEDS = flags.DEFINE_integer("fashion_seeds", None, "Seeds per dtype for "
                                      "Fashion-MNIST, when fewer fit the time; default --seeds.")
_FASHION_STEPS = flags.DEFINE_integer("fashion_steps", 600, "Training steps of each "
                                      "Fashion-MNIST run.")
_WORKDIR = flags.DEFINE_string("workdir", runs.DEFAULT_WORKDIR, "Folder for the runs.")
_TOY_STEPS = flags.DEFINE_integer("toy_steps", None, "Training steps of each toy run; "
                                  "default the toy config's.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Folder for PRECISION.md; default WORKDIR/report. docs/PRECISION.md "
    "was copied from such a page and extended by hand, so write elsewhere and copy.")


def precision_table(dataset: str, results: dict[str, list[dict]]) -> str:
  """Return a table with one row per metric and one column per dtype, then seconds per step."""
  kind = "image" if dataset == "fashion" else "toy"
  lines = ["| metric | " + " | ".join(DTYPES) + " |", "|---" * (len(DTYPES) + 1) + "|"]
  for name in runs.REPORTED[kind]:
    cells = [runs.mean_std([run["metrics"][name] for run in results[dtype]])
             for dtype in DTYPES]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  # Training time includes compiling, evaluation and checkpoints.
  cells = [runs.mean_std([run["seconds"] / run["num_steps"]
                                      for run in results[dtype]])
           for dtype in DTYPES]
  lines.append("| seconds per step, all included | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  cli.quiet_library_logs()
  runs.check_flags(_DATASETS.value, _SEEDS.value, _FASHION_SEEDS.value)
  output = _OUTPUT.value or os.path.join(_WORKDIR.value, "report")
  os.makedirs(output, exist_ok=True)
  started = time.perf_counter()
  sections = []
  for dataset in _DATASETS.value:
    seeds = runs.seeds_for(dataset, _SEEDS.value, _FASHION_SEEDS.value)
    results = {dtype: [runs.run_one(dataset, VARIANT, seed, root=_WORKDIR.value,
                                    fashion_steps=_FASHION_STEPS.value,
                                    toy_steps=_TOY_STEPS.value, compute_dtype=dtype)
                       for seed in range(seeds)]
               for dtype in DTYPES}
    steps = results[DTYPES[0]][0]["num_steps"]
    sections.append("\n".join([
        f"## {dataset}", "",
        f"{VARIANT}, {seeds} seed(s) per dtype, {steps} steps each.", "",
        precision_table(dataset, results), ""]))
    logging.info("%s done", dataset)

  header = ["# Results: float32 against bfloat16 compute", "",
            runs.provenance("compare_precision", _DATASETS.value, _SEEDS.value,
                            _FASHION_STEPS.value, _FASHION_SEEDS.value, _TOY_STEPS.value,
                            _WORKDIR.value, time.perf_counter() - started), "",
            "Each cell is the mean ± standard deviation over seeds at each run's ideal "
            "state. Metrics are defined in crossdomain/evaluation/quality.py.", ""]
  path = os.path.join(output, "PRECISION.md")
  with open(path, "w") as handle:
    handle.write("\n".join(header + sections))
  logging.info("Wrote %s", path)


if __name__ == "__main__":
  app.run(main)
