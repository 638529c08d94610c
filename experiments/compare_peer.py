"""Score the PyTorch peer's translations and ours of the same images, on one scale.

    /tmp/peer-venv/bin/python ../shared/peers/discogan_torch.py train --steps 600 --lean \\
        --out runs/peer/peer_fmnist_600.npz
    uv run python -m experiments.compare_peer --peer_npz=runs/peer/peer_fmnist_600.npz \\
        --workdir=runs/experiments/fashion_discogan_seed0 --step=600

The peer writes the sources `a` and `b` it translated beside its outputs.
This script translates those same sources with a checkpoint of ours, then
measures both sets with `crossdomain.evaluate`'s NPZ scoring and the
checkpoint's evaluator, so sample sizes and evaluator are the same. It
prints a table and writes it, with both reports, as JSON next to the peer's
file.
"""

import json
import os
import sys

from absl import app, flags

from crossdomain import cli, data as data_lib, evaluate, translate
from crossdomain.evaluation import quality as quality_lib

_PEER_NPZ = flags.DEFINE_string("peer_npz", None, "NPZ file written by the peer's train "
                                "command.", required=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of one of our runs.", required=True)
_STEP = flags.DEFINE_string("step", "latest", "Checkpoint step: a number, 'latest' or 'best'.")

SHOWN = ("target_accuracy_ab", "target_accuracy_ba", "frechet_distance_ab",
         "frechet_distance_ba", "frechet_distance_floor_a", "frechet_distance_floor_b",
         "kid_ab", "kid_ba", "cycle_mse_a", "cycle_mse_b", "subclass_probe_accuracy")


def main(argv):
  del argv
  cli.quiet_library_logs()
  translator = translate.load_translator(_WORKDIR.value, _STEP.value)
  config = translator.config
  if config.data.name != "fashion_mnist":
    sys.exit(f"error: the peer trains on Fashion-MNIST shoes and bags, but {_WORKDIR.value} "
             f"is a {config.data.name!r} run; pass the workdir of a run of "
             "configs/fashion_shoes_bags.py")
  domains = data_lib.load(config.data, config.seed)
  measure = quality_lib.make_quality(config, domains)
  peer = evaluate.read_npz(_PEER_NPZ.value, domains)

  forward_a = translator(peer["a"], "a2b")
  forward_b = translator(peer["b"], "b2a")
  ours = {"a": peer["a"], "b": peer["b"],
          "ab": forward_a["translated"], "aba": forward_a["reconstructed"],
          "ba": forward_b["translated"], "bab": forward_b["reconstructed"]}
  # Source classes are found once, by looking the shared sources up.
  fitted = evaluate.source_labels(measure, peer, domains)
  reports = {"peer": fitted(peer).metrics, "ours": fitted(ours).metrics}

  print(f"{len(peer['a'])} shoes and {len(peer['b'])} bags; ours: {_WORKDIR.value} at step "
        f"{translator.step}")
  print(f"{'metric':28s} {'peer':>10s} {'ours':>10s}")
  for name in SHOWN:
    print(f"{name:28s} {reports['peer'][name]:10.4g} {reports['ours'][name]:10.4g}")
  path = os.path.splitext(_PEER_NPZ.value)[0] + "_against_ours.json"
  with open(path, "w") as handle:
    json.dump({"workdir": _WORKDIR.value, "step": translator.step,
               "examples": {"a": len(peer["a"]), "b": len(peer["b"])},
               **reports}, handle, indent=2, default=float)
  print(f"Wrote {path}")


if __name__ == "__main__":
  app.run(main)
