import struct
import zlib

import pytest

from models.image_checks import check_image, read_image
from models.prediction import ErrorCode, ImageError
from tests.helpers import colour_image

MB = 1024 * 1024


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming the given size: what a decompression bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def _code(data: bytes, **limits) -> ErrorCode:
    with pytest.raises(ImageError) as e:
        check_image(data, limits.get("max_bytes", MB), limits.get("max_pixels", 10**7))
    return e.value.code


def test_a_valid_image_reports_its_size():
    assert check_image(colour_image("red", 0, size=40), MB, 10**7) == (40, 40)


def test_each_kind_of_bad_input_gets_its_code():
    assert _code(b"") is ErrorCode.NOT_AN_IMAGE
    assert _code(b"hello, world") is ErrorCode.NOT_AN_IMAGE
    assert _code(b"\xff\xd8\xff" + b"\x00" * 10) is ErrorCode.DECODE_ERROR
    assert _code(colour_image("red", 0), max_bytes=100) is ErrorCode.TOO_LARGE
    assert _code(colour_image("red", 0, size=40), max_pixels=1000) is ErrorCode.TOO_LARGE


def test_a_decompression_bomb_header_is_refused_before_decoding():
    assert _code(_png_header(100_000, 100_000)) is ErrorCode.TOO_LARGE


def test_read_image_names_missing_and_oversized_files(tmp_path):
    with pytest.raises(ImageError, match="not_found: no such file"):
        read_image(str(tmp_path / "nope.png"), MB)
    (tmp_path / "big.png").write_bytes(b"\x00" * 2000)
    with pytest.raises(ImageError, match="too_large: over the limit of 1000 bytes"):
        read_image(str(tmp_path / "big.png"), 1000)


def test_image_errors_survive_pickling_for_beam_workers():
    import pickle

    e = pickle.loads(pickle.dumps(ImageError(ErrorCode.DECODE_ERROR, "bad")))
    assert (e.code, e.message, str(e)) == (ErrorCode.DECODE_ERROR, "bad", "decode_error: bad")
