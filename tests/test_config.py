"""Checks of run config fields, before any data is read or any network is built."""

import importlib
import pathlib

import pytest

from crossdomain import config as config_lib
from crossdomain.errors import UserInputError

CONFIGS = pathlib.Path(__file__).parent.parent / "configs"
CONFIG_NAMES = sorted(path.stem for path in CONFIGS.glob("*.py") if not path.stem.startswith("_"))


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_shipped_configs_are_valid(name):
  config_lib.validate(importlib.import_module(f"configs.{name}").get_config())


@pytest.mark.parametrize("field, value, message", [
    ("num_steps", 0, "config.num_steps must be positive and finite, got 0"),
    ("optimizer.eps", 0.0, "config.optimizer.eps must be positive and finite, got 0.0"),
    ("optimizer.learning_rate", float("inf"),
     "config.optimizer.learning_rate must be positive and finite, got inf"),
    ("eval.evaluator_steps", 0, "config.eval.evaluator_steps must be positive and finite"),
    ("eval.patience", -1, "config.eval.patience must be finite and not negative, got -1"),
    ("eval.min_delta", -0.5, "config.eval.min_delta must be finite and not negative, got -0.5"),
    ("eval.min_delta", float("inf"), "config.eval.min_delta must be finite and not negative"),
    ("optimizer.weight_decay", -1e-5, "config.optimizer.weight_decay must be finite and not"),
    ("loss.recon_curriculum_steps", -5,
     "config.loss.recon_curriculum_steps must be finite and not negative, got -5"),
    ("optimizer.b1", 1.0, r"config.optimizer.b1 must lie in \[0, 1\), got 1.0"),
    ("optimizer.b2", -0.1, r"config.optimizer.b2 must lie in \[0, 1\), got -0.1"),
    ("eval.min_share", 2.0, r"config.eval.min_share must lie in \[0, 1\], got 2.0"),
    ("loss.recon_weight", 1.5, r"config.loss.recon_weight must lie in \[0, 1\], got 1.5"),
    ("loss.variant", "cycle", "config.loss.variant must be one of"),
    ("update_cycle", "GG", "config.update_cycle must be a string of 'D' and 'G' containing both"),
])
def test_invalid_field_is_named(field, value, message):
  config = config_lib.base_config()
  section, _, name = field.rpartition(".")
  (config[section] if section else config)[name] = value
  with pytest.raises(UserInputError, match=message):
    config_lib.validate(config)
