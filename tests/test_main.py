"""The command line: config overrides and the errors a user sees for bad input."""

import os
import subprocess
import sys

import pytest

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_main(tmp_path, *overrides):
  command = [sys.executable, "-m", "crossdomain.main", "--config=configs/gmm.py",
             f"--workdir={tmp_path}", *overrides]
  return subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("override,message", [
    ("--config.num_stepz=5",
     "unknown config field 'num_stepz'. Did you mean \"num_steps\""),
    ("--config.data.batchsize=5",
     "unknown config field 'data.batchsize'. Did you mean \"data.batch_size\""),
    ("--config.num_steps=abc",
     "--config.num_steps expects a whole number, such as 8000, got 'abc'"),
    ("--config.model.tie_generators=maybe",
     "--config.model.tie_generators expects true or false, such as true, got 'maybe'"),
    ("--config.model.hidden=()", "error: config.model.hidden must be one or more positive "
                                 "layer widths, such as (256, 256), got ()"),
    ("--config.data.batch_size=1000",
     "error: data.batch_size 1000 is larger than domain A's 512 training examples"),
    ("--num_processes=2", "error: --coordinator_address, --num_processes and --process_id "
                          "must be given together"),
])
def test_bad_input_exits_with_message(tmp_path, override, message):
  result = _run_main(tmp_path, override)
  assert result.returncode != 0
  assert message in result.stderr
  assert "Traceback" not in result.stderr


def test_missing_config_file_lists_configs(tmp_path):
  command = [sys.executable, "-m", "crossdomain.main", "--config=configs/gmmm.py",
             f"--workdir={tmp_path}"]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  configs = sorted(name for name in os.listdir(os.path.join(REPOSITORY, "configs"))
                   if name.endswith(".py") and not name.startswith("_"))
  assert "gmm.py" in configs
  assert result.stderr.strip().splitlines() == [
      "FATAL Flags parsing error: config file configs/gmmm.py not found; configs contains "
      + ", ".join(configs)]


def test_workdir_url_gives_one_line(tmp_path):
  result = _run_main("gs://bucket/run")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: --workdir gs://bucket/run is a URL, but the run writes to a folder; mount")
  assert not os.path.exists(os.path.join(REPOSITORY, "gs:"))


def test_workdir_that_is_a_file_gives_one_line(tmp_path):
  workdir = tmp_path / "notes.txt"
  workdir.write_text("notes\n")
  result = _run_main(workdir)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      f"error: --workdir {workdir} is a file; pass a folder for the run"]


def test_package_quiets_tensorflow_notices():
  environment = {name: value for name, value in os.environ.items()
                 if name not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
  command = [sys.executable, "-c",
             "import os, crossdomain, tensorflow as tf; tf.constant(1.0) + 1.0; "
             "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['TF_CPP_MIN_LOG_LEVEL'])"]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True,
                          timeout=120, env=environment)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ["0", "1"]
  assert "oneDNN custom operations" not in result.stderr
  assert "cpu_feature_guard" not in result.stderr


def test_package_keeps_users_tensorflow_settings():
  command = [sys.executable, "-c", "import os, crossdomain; "
             "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['TF_CPP_MIN_LOG_LEVEL'])"]
  result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1",
                               "TF_CPP_MIN_LOG_LEVEL": "0"})
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.split() == ["1", "0"]


@pytest.mark.slow
def test_override_sets_steps(tmp_path):
  result = _run_main(tmp_path, "--config.num_steps=4", "--config.log_every=2",
                     "--config.model.hidden=(8, 8)")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "step 4/4" in result.stderr
  assert os.path.isdir(tmp_path / "checkpoints" / "4")
  # The config listing marks the overrides.
  assert "  num_steps = 4  # set on the command line" in result.stderr
  assert "  model.hidden = (8, 8)  # set on the command line" in result.stderr
  assert "  seed = 0\n" in result.stderr
