"""The input CSV reader: RFC 4180 in any supported dialect, and one bad row is one bad row."""

from __future__ import annotations

import csv
import io
import os
import tempfile
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beam_pipelines.csv_input import (
    DELIMITERS,
    FIELD_LIMIT,
    CsvFormat,
    CsvInputError,
    read_header,
    read_rows,
)


def _read(path, fmt: CsvFormat | None = None):
    fmt = fmt or CsvFormat()
    columns = read_header(str(path), fmt)
    return columns, list(read_rows(str(path), columns, fmt))


def _cells(row, columns):
    return [row.image_uri] + [row.extra[c] for c in columns if c != "image_uri"]


# ---------------------------------------------------------------- the property

_LINE_BREAKS = "\r\n"


def _header(alphabet):
    # No line breaks in column names: a bare '\r' is ambiguous in a '\n' file (see _tables).
    names = st.text(alphabet, min_size=1, max_size=8).map(lambda t: "".join(c for c in t if c not in _LINE_BREAKS))
    names = names.map(str.strip).filter(bool)
    return st.lists(names, max_size=4, unique=True).map(lambda ns: ["image_uri"] + [n for n in ns if n != "image_uri"])


@st.composite
def _tables(draw):
    delimiter = draw(st.sampled_from(DELIMITERS))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    terminator = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32", "latin-1"]))
    alphabet = st.characters(blacklist_categories=("Cs",), max_codepoint=255 if encoding == "latin-1" else None)
    cell = st.text(alphabet, max_size=12)
    if quoting == csv.QUOTE_MINIMAL and terminator != "\r\n":
        # The writer quotes only the line-break characters of its own terminator: a bare '\r'
        # inside a '\n'-terminated file is ambiguous for any reader, so no table holds one.
        cell = cell.map(lambda text: "".join(c for c in text if c not in _LINE_BREAKS))
    header = draw(_header(alphabet))
    rows = draw(st.lists(st.lists(cell, min_size=len(header), max_size=len(header)), max_size=6))
    return delimiter, quoting, terminator, encoding, header, rows


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables())
def test_any_table_the_csv_module_writes_comes_back_row_for_row(table):
    delimiter, quoting, terminator, encoding, header, rows = table
    text = io.StringIO(newline="")
    writer = csv.writer(text, delimiter=delimiter, quoting=quoting, lineterminator=terminator)
    writer.writerow(header)
    writer.writerows(rows)
    fmt = CsvFormat("latin-1" if encoding == "latin-1" else "auto", delimiter)  # BOMs are detected
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "in.csv")
        with open(path, "wb") as f:
            f.write(text.getvalue().encode(encoding))
        columns, got = _read(path, fmt)

    assert columns == header
    assert len(got) == len(rows)  # records in == rows in
    assert all(r.error is None for r in got)
    assert [_cells(r, header) for r in got] == rows


# ---------------------------------------------------------------- cases the issue named


def test_a_quoted_field_with_newlines_is_one_row(tmp_path):
    (tmp_path / "in.csv").write_bytes(b'image_uri,note\r\na.png,"two\r\nlines, and ""quotes"""\r\nb.png,x\r\n')
    columns, rows = _read(tmp_path / "in.csv")
    assert [_cells(r, columns) for r in rows] == [["a.png", 'two\r\nlines, and "quotes"'], ["b.png", "x"]]


def test_cr_only_line_ends_are_line_ends(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"image_uri,id\ra.png,1\rb.png,2\r")
    assert [r.extra["id"] for r in _read(tmp_path / "in.csv")[1]] == ["1", "2"]


def test_one_byte_that_is_not_utf8_spoils_its_row_only(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"image_uri,note\na.png,caf\xe9\nb.png,ok\n")
    _, rows = _read(tmp_path / "in.csv")
    assert len(rows) == 2
    assert str(rows[0].error).startswith("invalid_row: line 2 ") and rows[0].extra["note"] == "caf\ufffd"
    assert rows[1].error is None and rows[1].extra["note"] == "ok"


def test_a_declared_encoding_reads_legacy_files(tmp_path):
    (tmp_path / "in.csv").write_bytes("image_uri,note\na.png,café\n".encode("cp1252"))
    _, rows = _read(tmp_path / "in.csv", CsvFormat("cp1252"))
    assert rows[0].error is None and rows[0].extra["note"] == "café"


def test_byte_order_marks_are_detected(tmp_path):
    for encoding in ("utf-8-sig", "utf-16", "utf-32"):
        (tmp_path / "in.csv").write_bytes("image_uri,note\na.png,é\n".encode(encoding))
        columns, rows = _read(tmp_path / "in.csv")
        assert columns == ["image_uri", "note"] and rows[0].extra["note"] == "é", encoding


def test_a_field_over_the_limit_is_one_bad_row_and_reading_goes_on(tmp_path):
    big = b"x" * (FIELD_LIMIT + 1)
    (tmp_path / "in.csv").write_bytes(b"image_uri,note\na.png," + big + b"\nb.png,ok\n")
    _, rows = _read(tmp_path / "in.csv")
    assert [r.error is not None for r in rows] == [True, False]
    assert "line 2" in str(rows[0].error) and "field larger than field limit" in str(rows[0].error)


def test_cells_beyond_the_header_make_the_row_an_error_not_a_silent_loss(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"image_uri,id\na.png,1,surprise\nb.png\n")
    _, rows = _read(tmp_path / "in.csv")
    assert str(rows[0].error) == "invalid_row: line 2 has 3 cells but the header names 2 columns"
    assert rows[1].error is None and rows[1].extra == {"id": ""}  # missing trailing cells are empty


def test_blank_lines_are_not_rows(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"\nimage_uri\n\na.png\n\n\nb.png\n")
    assert [r.image_uri for r in _read(tmp_path / "in.csv")[1]] == ["a.png", "b.png"]


def test_a_header_without_image_uri_or_with_repeats_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("path\nx.png\n")
    (tmp_path / "b.csv").write_text("image_uri,id,id\nx.png,1,2\n")
    with pytest.raises(CsvInputError, match="no 'image_uri' column"):
        read_header(str(tmp_path / "a.csv"))
    with pytest.raises(CsvInputError, match="repeats columns \\['id'\\]"):
        read_header(str(tmp_path / "b.csv"))


def test_a_fifo_as_input_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "in.csv")
    done = threading.Event()
    outcome = {}

    def read():
        try:
            read_header(str(tmp_path / "in.csv"))
        except CsvInputError as e:
            outcome["error"] = str(e)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "reading a FIFO hung"
    assert "not a regular file" in outcome["error"]


def test_unknown_encodings_and_delimiters_are_refused():
    with pytest.raises(CsvInputError, match="unknown text encoding"):
        CsvFormat("klingon")
    with pytest.raises(CsvInputError, match="delimiter"):
        CsvFormat(delimiter=":")
