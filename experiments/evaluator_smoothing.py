"""Train the shoes-against-bags evaluator with and without label smoothing, and compare them.

    uv run python -m experiments.evaluator_smoothing --workdir=runs/smoothing

Image-folder and pix2pix runs measure their translations with a classifier
of domain A against domain B (evaluators.domain_pair_evaluator). This
script trains that classifier on Fashion-MNIST's training shoes and bags
once for each label smoothing, as those runs train it. For each one it
prints the accuracy on the test shoes and bags and the median norm of
their features. It also prints two Fréchet distances on those features.
One is between the shoes and the bags. The other is between two random
halves of the bags, the floor of a perfect translation. The classifiers are cached in
WORKDIR/evaluators and the figures are written to
WORKDIR/evaluator_smoothing.json.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

from crossdomain import cli
from crossdomain.data import fashion_mnist
from crossdomain.evaluation import classifier, evaluators, metrics

_WORKDIR = flags.DEFINE_string("workdir", None, "Folder for the classifiers and the figures.")
_SMOOTHINGS = flags.DEFINE_list("smoothings", ["0.0", "0.1"],
                                "Label smoothings to train with, each in [0, 1).")
_STEPS = flags.DEFINE_integer("steps", evaluators.DOMAIN_PAIR_STEPS,
                              "Training steps of each classifier.")
_LOCAL_DIR = flags.DEFINE_string("fashion_mnist_dir", fashion_mnist.DEFAULT_LOCAL_DIR,
                                 "Folder of Fashion-MNIST's four IDX files.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", None,
                                     "TFDS data directory, empty for the TFDS default.")


def measure(evaluator: classifier.Evaluator, shoes: np.ndarray, bags: np.ndarray) -> dict:
  """Return the evaluator's figures on the test shoes and bags."""
  shoe_features, bag_features = (evaluator.features(classifier.scale_images(images))
                                 for images in (shoes, bags))
  half_1, half_2 = metrics.split_halves(len(bags), seed=0)
  norms = np.linalg.norm(np.concatenate([shoe_features, bag_features]), axis=1)
  return {"test_accuracy": evaluator.test_accuracy,
          "median_feature_norm": float(np.median(norms)),
          "frechet_distance_shoes_bags": metrics.frechet_distance(shoe_features, bag_features),
          "frechet_distance_bag_halves": metrics.frechet_distance(bag_features[half_1],
                                                                  bag_features[half_2])}


def main(argv):
  del argv
  cli.quiet_library_logs()
  try:
    smoothings = [float(text) for text in _SMOOTHINGS.value]
  except ValueError:
    sys.exit(f"error: --smoothings must be numbers in [0, 1), such as 0.0,0.1, got "
             f"{','.join(_SMOOTHINGS.value)}")
  train, test = (fashion_mnist.load_domains(split, local_dir=_LOCAL_DIR.value,
                                            tfds_data_dir=_TFDS_DATA_DIR.value)
                 for split in ("train", "test"))

  records = []
  for smoothing in smoothings:
    evaluator = evaluators.domain_pair_evaluator(
        os.path.join(_WORKDIR.value, "evaluators"), f"shoes_vs_bags_smooth{smoothing}",
        train.images_a, train.images_b, test.images_a, test.images_b,
        class_names=("shoes", "bags"), steps=_STEPS.value, label_smoothing=smoothing)
    records.append({"label_smoothing": smoothing, "steps": _STEPS.value,
                    **measure(evaluator, test.images_a, test.images_b)})

  print(f"{'smoothing':>9} {'accuracy':>9} {'feature norm':>13} {'FD shoes-bags':>14} "
        f"{'FD bag halves':>14}")
  for record in records:
    print(f"{record['label_smoothing']:9.2f} {record['test_accuracy']:9.2%} "
          f"{record['median_feature_norm']:13.2f} {record['frechet_distance_shoes_bags']:14.2f} "
          f"{record['frechet_distance_bag_halves']:14.3f}")
  path = os.path.join(_WORKDIR.value, "evaluator_smoothing.json")
  with open(path, "w") as handle:
    json.dump(records, handle, indent=2)
  print(f"wrote {path}")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
