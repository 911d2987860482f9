"""Input CSVs read as CSV: RFC 4180 quoting, any line ending, a BOM, a declared encoding.

Reading line by line would break a quoted field that holds a newline into extra rows, so
each file is parsed whole by Python's ``csv`` module, as a stream (never loaded into
memory at once), and the rows are then spread over workers.

Bad rows never stop a run: a row with bytes that are not text in the file's encoding, more
cells than the header, or a field over ``FIELD_LIMIT`` becomes an ``InputRow`` with
``error`` set, which the pipeline turns into an error record. Blank lines are not rows.
"""

from __future__ import annotations

import codecs
import csv
import io
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import apache_beam as beam

from beam_pipelines.input_row import InputRow
from models import storage
from models.errors import InvalidInput, describe
from models.manifest import resolve_uri
from models.prediction import ErrorCode, ImageError

FIELD_LIMIT = 1024 * 1024  # characters per cell: larger cells are bad rows, not memory blow-ups
AUTO = "auto"
DELIMITERS = (",", ";", "\t", "|")
_BOMS = (  # longest first: a UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

csv.field_size_limit(FIELD_LIMIT)


class CsvInputError(InvalidInput):
    """An input CSV that cannot be processed at all (as opposed to a bad row)."""


@dataclass(frozen=True)
class CsvFormat:
    """How to read a CSV: ``auto`` encoding means a BOM's, else UTF-8."""

    encoding: str = AUTO
    delimiter: str = ","

    def __post_init__(self) -> None:
        if self.delimiter not in DELIMITERS:
            raise CsvInputError(f"CSV delimiter {self.delimiter!r} is not one of {list(DELIMITERS)}")
        if self.encoding != AUTO:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise CsvInputError(f"unknown text encoding {self.encoding!r}") from None


def open_text(path: str, fmt: CsvFormat = CsvFormat()) -> TextIO:
    """A text stream of a CSV file (regular files only), decoded by its BOM or ``fmt.encoding``.

    Undecodable bytes are kept as surrogate escapes, so one bad byte marks one bad row
    instead of failing the whole file.
    """
    raw = storage.open_for_read(path)
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    head = buffered.peek(4)[:4]
    encoding = fmt.encoding
    if encoding == AUTO:
        encoding = next((name for bom, name in _BOMS if head.startswith(bom)), "utf-8")
    elif codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a declared UTF-8 file may still start with a BOM
    return io.TextIOWrapper(buffered, encoding=encoding, errors="surrogateescape", newline="")


def _has_bad_bytes(cells: list[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for cell in cells for ch in cell)


def _printable(text: str) -> str:
    """Undecodable bytes shown as U+FFFD, so the error record can still be written."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_header(path: str, fmt: CsvFormat = CsvFormat()) -> list[str]:
    """Column names of an input CSV; fails at once, naming the problem, if unusable."""
    try:
        with open_text(path, fmt) as text:
            reader = csv.reader(text, delimiter=fmt.delimiter)
            header = next((row for row in reader if row), [])
    except (OSError, InvalidInput, csv.Error, UnicodeError) as e:
        raise CsvInputError(f"cannot read input CSV {path}: {describe(e)}") from None
    if _has_bad_bytes(header):
        raise CsvInputError(
            f"the header of input CSV {path} is not valid {fmt.encoding if fmt.encoding != AUTO else 'UTF-8'} text; "
            "declare the file's encoding"
        )
    columns = [c.strip() for c in header]
    if "image_uri" not in columns:
        raise CsvInputError(
            f"input CSV {path} has no 'image_uri' column in its header (found {columns or 'an empty file'}); "
            "the first line must name the columns, e.g. 'image_uri' or 'image_uri,id'"
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise CsvInputError(f"input CSV {path} repeats columns {duplicates}")
    return columns


def to_input_row(cells: list[str], columns: list[str], base_dir: str, line: int) -> InputRow:
    """An InputRow from one parsed row; a row that cannot be trusted gets ``error`` set."""
    error = None
    if _has_bad_bytes(cells):
        error = f"line {line} has bytes that are not text in the file's encoding"
        cells = [_printable(c) for c in cells]
    elif len(cells) > len(columns):
        error = f"line {line} has {len(cells)} cells but the header names {len(columns)} columns"
    cells = cells + [""] * (len(columns) - len(cells))
    values = dict(zip(columns, cells, strict=False))
    uri = values.pop("image_uri")  # kept as written: the record echoes it; surrounding spaces are not read
    if error:
        return InputRow(uri, "", values, line, ImageError(ErrorCode.INVALID_ROW, error))
    return InputRow(uri, resolve_uri(uri.strip(), base_dir) if uri.strip() else "", values, line)


def iter_rows(text: TextIO, columns: list[str], base_dir: str, fmt: CsvFormat = CsvFormat()) -> Iterator[InputRow]:
    """Every data row after the header, bad ones included (with ``error`` set)."""
    reader = csv.reader(text, delimiter=fmt.delimiter)
    header_seen = False
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # e.g. a field over FIELD_LIMIT: that row is bad, the rest goes on
            empty = {c: "" for c in columns if c != "image_uri"}
            yield InputRow("", "", empty, line, ImageError(ErrorCode.INVALID_ROW, f"line {line}: {describe(e)}"))
            continue
        if not cells:  # a blank line
            continue
        if not header_seen:
            header_seen = True
            continue
        yield to_input_row(cells, columns, base_dir, line)


def read_rows(path: str, columns: list[str], fmt: CsvFormat = CsvFormat()) -> Iterator[InputRow]:
    """Rows of a headed CSV; relative URIs resolve against the CSV's folder."""
    base_dir = posixpath.dirname(storage.local_path(path) if storage.is_local(path) else path)
    with open_text(path, fmt) as text:
        yield from iter_rows(text, columns, base_dir, fmt)


class ReadCsvRows(beam.PTransform):
    """A headed CSV as InputRows, one per data row (bad rows too), spread over workers."""

    def __init__(self, path: str, columns: list[str], fmt: CsvFormat = CsvFormat()):
        super().__init__()
        self.path, self.columns, self.fmt = path, columns, fmt

    def expand(self, pbegin):
        return (
            pbegin
            | "Path" >> beam.Create([self.path])
            | "Parse" >> beam.FlatMap(read_rows, self.columns, self.fmt)
            | "Spread" >> beam.Reshuffle()
        )
