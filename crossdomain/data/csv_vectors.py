"""CSV files of numeric columns as vector domains.

Each row is one example and each column one feature. The first row is a
header when none of its cells is a number. Blank lines are skipped, and
every other row must have one finite number per column.
"""

import csv
import math
import os

import numpy as np
from absl import logging

from crossdomain.errors import UserInputError


class CsvFileNotFoundError(FileNotFoundError):
  """Raised when a CSV file does not exist."""


def _parse_number(cell: str) -> float | None:
  """Return the cell's value, or None when it is not a finite number."""
  try:
    value = float(cell)
  except ValueError:
    return None
  return value if math.isfinite(value) else None


def _parse_row(cells: list[str], path: str, line: int, num_columns: int,
               is_first_row: bool) -> list[float]:
  """Return the values of one data row, or raise UserInputError naming the file and line."""
  if len(cells) != num_columns:
    raise UserInputError(f"line {line} of {path} has a different number of values "
                         f"({len(cells)}) than the first row ({num_columns}); give every row "
                         "the same columns")
  values = []
  for column, cell in enumerate(cells, start=1):
    value = _parse_number(cell)
    if value is None:
      problem = "is missing" if not cell else f"{cell!r} is not a finite number"
      message = (f"line {line} of {path}, column {column}: the value {problem}; "
                 "every value must be a finite number, such as 0.5 or -3e2")
      if is_first_row:
        message += ". The first row counts as a header only when none of its cells is a number"
      raise UserInputError(message)
    values.append(value)
  return values


def read_vectors(path: str | os.PathLike) -> np.ndarray:
  """Read a CSV file of numbers into float32 [rows, columns], without its header."""
  vectors, _ = read_table(path)
  return vectors


def read_table(path: str | os.PathLike) -> tuple[np.ndarray, list[str] | None]:
  """Read a CSV file of numbers into float32 [rows, columns] and its header row.

  Cells may be padded with spaces. A UTF-8 byte order mark is ignored.

  Args:
    path: the CSV file, comma-separated, with an optional header row.

  Returns:
    float32 [rows, columns], the data rows in file order, and the header
    row's cells, or None when the file has no header.

  Raises:
    CsvFileNotFoundError: the file does not exist.
    UserInputError: the file is not UTF-8 text, has no data rows, a value
      is missing or not a finite number, or a row has a different number of
      values than the first. The message gives the file, and the line number
      where it applies.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    raise UserInputError(f"CSV file {path} is a folder; name a CSV file in data.csv_a and "
                         "data.csv_b")
  if not os.path.isfile(path):
    raise CsvFileNotFoundError(f"CSV file {path} does not exist; check data.csv_a and data.csv_b")

  rows, header, blank_lines = [], None, 0
  num_columns = None  # set by the first non-blank row
  with open(path, newline="", encoding="utf-8-sig") as file:
    reader = csv.reader(file)
    end = 0  # the last line of the previous row
    try:
      for cells in reader:
        line, end = end + 1, reader.line_num
        if line != end:  # a quoted value ran over line ends
          raise UserInputError(f"line {line} of {path} opens a quote that closes on line {end}; "
                               "close each quote on the line where it opens")
        cells = [cell.strip() for cell in cells]
        if not any(cells):
          blank_lines += 1
          continue
        is_first_row = num_columns is None
        if is_first_row:
          num_columns = len(cells)
          if all(_parse_number(cell) is None for cell in cells):
            header = cells
            continue
        rows.append(_parse_row(cells, path, line, num_columns, is_first_row))
    except csv.Error as error:
      raise UserInputError(f"line {reader.line_num} of {path} is not valid CSV: {error}") from error
    except UnicodeDecodeError as error:
      byte = error.object[error.start:error.start + 1].hex()
      with open(path, "rb") as raw:
        is_utf16 = raw.read(2) in (b"\xff\xfe", b"\xfe\xff")  # UTF-16 byte order marks
      source = "utf-16" if is_utf16 else "latin1"
      raise UserInputError(f"CSV file {path} is not UTF-8 text (byte 0x{byte} is invalid "
                           f"in UTF-8); save it as UTF-8, for example with iconv -f {source} "
                           "-t utf-8") from error

  if not rows:
    raise UserInputError(f"CSV file {path} contains no data rows; expected one row of numbers "
                         "per example")
  logging.info("Read %d %s of %d columns from %s%s%s", len(rows),
               "row" if len(rows) == 1 else "rows", num_columns, path,
               ", after a header row" if header else "",
               f", skipping {blank_lines} blank {'line' if blank_lines == 1 else 'lines'}"
               if blank_lines else "")
  return np.asarray(rows, np.float32), header
