"""Cheap checks before an image reaches the model: size, format and pixel count.

They read only the bytes' header, so a decompression bomb is refused before anything
decodes it. Full decoding happens in the exported graph; failures there are caught per
image by the inference step.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image

from models import storage
from models.errors import describe
from models.prediction import ErrorCode, ImageError

# Formats the exported graph decodes (tf.io.decode_image).
_MAGIC = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
}


def sniff_format(data: bytes) -> str | None:
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def read_image(uri: str, max_bytes: int) -> bytes:
    """The raw bytes of ``uri``, or an ImageError naming why they cannot be had.

    One open and one read of at most ``max_bytes + 1`` bytes: no separate stat call per
    image, and an oversized object is never downloaded whole.
    """
    if not uri:
        raise ImageError(ErrorCode.NOT_FOUND, "empty image_uri")
    try:
        data = storage.read_bytes(uri, limit=max_bytes + 1)
    except FileNotFoundError:
        raise ImageError(ErrorCode.NOT_FOUND, f"no such file: {uri}") from None
    except storage.NotARegularFile:
        raise ImageError(ErrorCode.NOT_FOUND, f"not a regular file: {uri}") from None
    except IsADirectoryError:
        raise ImageError(ErrorCode.NOT_FOUND, f"not a regular file: {uri}") from None
    except Exception as e:  # e.g. a gs:// object that is missing or that we may not read
        reason = "no such object" if not _exists(uri) else "cannot read"
        raise ImageError(ErrorCode.NOT_FOUND, f"{reason}: {uri} ({_short(e)})") from None
    if len(data) > max_bytes:
        raise ImageError(ErrorCode.TOO_LARGE, f"over the limit of {max_bytes} bytes")
    return data


def _exists(uri: str) -> bool:
    try:
        return storage.exists(uri)
    except Exception:
        return False


def check_image(data: bytes, max_bytes: int, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header, or an ImageError for what the model must not see."""
    if not data:
        raise ImageError(ErrorCode.NOT_AN_IMAGE, "empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(ErrorCode.TOO_LARGE, f"{len(data)} bytes is over the limit of {max_bytes}")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageError(ErrorCode.NOT_AN_IMAGE, "not a JPEG, PNG, GIF or BMP file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise ImageError(ErrorCode.TOO_LARGE, "image dimensions are implausibly large") from None
    except Image.UnidentifiedImageError:
        raise ImageError(ErrorCode.DECODE_ERROR, f"unreadable {fmt} header") from None
    except Exception as e:
        raise ImageError(ErrorCode.DECODE_ERROR, f"unreadable {fmt} header: {_short(e)}") from None
    if width * height > max_pixels:
        raise ImageError(ErrorCode.TOO_LARGE, f"{width}x{height} pixels is over the limit of {max_pixels}")
    return width, height


def _short(e: BaseException, limit: int = 200) -> str:
    return describe(e, limit)
