"""Tests for crossdomain.data.csv_vectors and the csv data source."""

import numpy as np
import pytest

from configs import csv as csv_config
from crossdomain import data as data_lib
from crossdomain.data import csv_vectors, pipeline
from crossdomain.errors import UserInputError


def write(path, text):
  path.write_text(text)
  return path


def csv_config_for(path_a, path_b):
  config = csv_config.get_config().data
  config.csv_a = str(path_a)
  config.csv_b = str(path_b)
  config.test_fraction = 0.25
  return config


def test_read_with_header(tmp_path):
  path = write(tmp_path / "a.csv", "x,y,z\n1,2,3\n-4.5, 5e-1 ,6\n")
  vectors = csv_vectors.read_vectors(path)
  assert vectors.dtype == np.float32
  assert vectors.tolist() == [[1, 2, 3], [-4.5, 0.5, 6]]


def test_read_without_header(tmp_path, caplog):
  path = write(tmp_path / "a.csv", "1,2\n3,4\n\n5,6\n")
  with caplog.at_level("INFO"):
    assert csv_vectors.read_vectors(path).tolist() == [[1, 2], [3, 4], [5, 6]]
  assert f"Read 3 rows of 2 columns from {path}, skipping 1 blank line" in caplog.text


def test_read_logs_header(tmp_path, caplog):
  path = write(tmp_path / "a.csv", "x,y\n1,2\n")
  with caplog.at_level("INFO"):
    csv_vectors.read_table(path)
  assert caplog.text.rstrip().endswith(f"Read 1 row of 2 columns from {path}, after a header row")


def test_read_ignores_byte_order_mark(tmp_path):
  path = tmp_path / "excel.csv"
  path.write_bytes("\ufeffa,b\n1,2\n".encode("utf-8"))
  assert csv_vectors.read_vectors(path).tolist() == [[1, 2]]


@pytest.mark.parametrize("text, line, problem", [
    ("a,b\n1,2\n3,\n", 3, "column 2: the value is missing"),
    ("a,b\n1,2\n3,4\nfive,6\n", 4, "column 1: the value 'five' is not a finite number"),
    ("1,2\n3,nan\n", 2, "column 2: the value 'nan' is not a finite number"),
    ("1,2\n3,4,5\n", 2, "number of values (3) than the first row (2)"),
    ("a,b\n1\n", 2, "number of values (1) than the first row (2)"),
    ("a,b\n1,2\n3,\"4\n5,6\n7,8\n", 3, "opens a quote that closes on line 5"),
    ("1,2\n\n3,4\n5,6,7\n", 4, "number of values (3) than the first row (2)"),
])
def test_malformed_row_names_file_and_line(tmp_path, text, line, problem):
  path = write(tmp_path / "bad.csv", text)
  with pytest.raises(UserInputError) as raised:
    csv_vectors.read_vectors(path)
  message = str(raised.value)
  assert f"line {line} of {path}" in message
  assert problem in message


def test_first_row_mixing_names_and_numbers_raises(tmp_path):
  path = write(tmp_path / "mixed.csv", "x,2\n1,2\n")
  with pytest.raises(UserInputError, match="line 1 of .*header only when none of its cells"):
    csv_vectors.read_vectors(path)


def test_file_without_rows_raises(tmp_path):
  path = write(tmp_path / "header_only.csv", "a,b\n")
  with pytest.raises(UserInputError, match="contains no data rows"):
    csv_vectors.read_vectors(path)


@pytest.mark.parametrize("encoding, byte, source", [("latin-1", "e9", "latin1"),
                                                    ("utf-16", "ff", "utf-16")])
def test_file_not_utf8_raises(tmp_path, encoding, byte, source):
  path = tmp_path / "other.csv"
  path.write_bytes("caf\u00e9,y\n1,2\n".encode(encoding))
  with pytest.raises(UserInputError, match=f"CSV file {path} is not UTF-8 text "
                                           f"\\(byte 0x{byte} is invalid in UTF-8\\); "
                                           f"save it as UTF-8, for example with iconv -f "
                                           f"{source} -t utf-8$"):
    csv_vectors.read_vectors(path)


def test_folder_given_as_file_raises(tmp_path):
  with pytest.raises(UserInputError, match=f"CSV file {tmp_path} is a folder"):
    csv_vectors.read_vectors(tmp_path)


def test_missing_file_raises(tmp_path):
  with pytest.raises(csv_vectors.CsvFileNotFoundError, match=str(tmp_path / "absent.csv")):
    csv_vectors.read_vectors(tmp_path / "absent.csv")


def test_load_csv_domains_of_different_widths(tmp_path):
  rows_a = "\n".join(f"{i},{i + 0.5},{-i}" for i in range(12))
  path_a = write(tmp_path / "a.csv", "p,q,r\n" + rows_a + "\n")
  path_b = write(tmp_path / "b.csv", "\n".join(f"{100 + i}" for i in range(8)) + "\n")
  domains = data_lib.load(csv_config_for(path_a, path_b), seed=0)

  assert not domains.is_image
  assert domains.mixtures is None
  assert domains.a.example_shape == (3,)
  assert domains.b.example_shape == (1,)
  assert (domains.a.num_train, len(domains.a.test)) == (9, 3)
  assert (domains.b.num_train, len(domains.b.test)) == (6, 2)
  assert domains.a.test.dtype == np.float32
  assert domains.a.train_labels.tolist() == [0] * 9

  # Training and held-out rows are disjoint and together make the file.
  firsts = sorted(domains.a.train[:, 0].tolist() + domains.a.test[:, 0].tolist())
  assert firsts == list(range(12))
  again = data_lib.load(csv_config_for(path_a, path_b), seed=0)
  np.testing.assert_array_equal(again.a.test, domains.a.test)

  batch_a, batch_b = next(pipeline.train_batches(domains.a.train, domains.b.train, 4, 0, 0)
                          .as_numpy_iterator())
  assert batch_a.shape == (4, 3)
  assert batch_b.shape == (4, 1)


def test_unset_csv_raises(tmp_path):
  config = csv_config.get_config().data
  with pytest.raises(UserInputError, match="config.data.csv_a is not set"):
    data_lib.load(config, seed=0)


def test_invalid_test_fraction_raises(tmp_path):
  path = write(tmp_path / "a.csv", "1\n2\n3\n")
  config = csv_config_for(path, path)
  config.test_fraction = 1.0
  with pytest.raises(UserInputError, match=r"test_fraction must lie in \(0, 1\), got 1.0"):
    data_lib.load(config, seed=0)
