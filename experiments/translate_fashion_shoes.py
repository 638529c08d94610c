"""Translate real Fashion-MNIST test shoes with the translate command and classify the bags.

    uv run python -m experiments.translate_fashion_shoes --workdir=runs/fmnist --count=500

Writes the first `count` held-out shoes as PNG files, runs
`python -m crossdomain.translate` on that folder as a user would, reads the
PNG files it writes and reports the share that the Fashion-MNIST evaluator
classifies as bags, next to the share for the real shoes.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags
from PIL import Image

from crossdomain import cli, translate
from crossdomain.data import fashion_mnist
from crossdomain.evaluation import classifier, evaluators

_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir of a Fashion-MNIST run.")
_STEP = flags.DEFINE_string("step", "best", "Checkpoint step: a number, 'latest' or 'best'.")
_COUNT = flags.DEFINE_integer("count", 500, "Held-out shoes to translate.")


def _bag_share(evaluator: classifier.Evaluator, images: np.ndarray) -> float:
  predicted = np.argmax(evaluator.logits(classifier.scale_images(images)), axis=1)
  return float(np.mean(predicted == fashion_mnist.BAG_CLASS))


def main(argv):
  del argv
  cli.quiet_library_logs()
  translator = translate.load_translator(_WORKDIR.value, _STEP.value)
  config = translator.config
  if config.data.name != "fashion_mnist":
    sys.exit(f"error: {_WORKDIR.value} is a {config.data.name!r} run; pass the workdir of "
             "a run of configs/fashion_shoes_bags.py")
  # The run's own data and evaluator settings.
  shoes = fashion_mnist.load_domains("test", local_dir=config.data.fashion_mnist_dir,
                                     tfds_data_dir=config.data.tfds_data_dir
                                     ).images_a[:_COUNT.value]
  evaluator = evaluators.fashion_mnist_evaluator(
      config.eval.evaluator_dir, local_dir=config.data.fashion_mnist_dir,
      tfds_data_dir=config.data.tfds_data_dir, steps=config.eval.evaluator_steps,
      seed=config.eval.evaluator_seed)

  with tempfile.TemporaryDirectory() as folder:
    inputs, outputs = os.path.join(folder, "shoes"), os.path.join(folder, "bags")
    os.makedirs(inputs)
    names = [f"shoe_{index:04d}.png" for index in range(len(shoes))]
    for name, image in zip(names, shoes):
      Image.fromarray(image[..., 0]).save(os.path.join(inputs, name))
    subprocess.run([sys.executable, "-m", "crossdomain.translate", f"--workdir={_WORKDIR.value}",
                    f"--step={translator.step}", "--direction=a2b", f"--input={inputs}",
                    f"--output={outputs}"], check=True)
    bags = np.stack([np.asarray(Image.open(os.path.join(outputs, name)))[..., None]
                     for name in names])

  print(f"{len(bags)} held-out shoes translated by {_WORKDIR.value} at step {translator.step}")
  print(f"classified as bags: translations {_bag_share(evaluator, bags):.1%}, "
        f"real shoes {_bag_share(evaluator, shoes):.1%} "
        f"(evaluator test accuracy {evaluator.test_accuracy:.1%})")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
