"""Unlabelled images from wherever a user keeps them: a folder, a CSV, a gs:// prefix or a glob.

``imgclf pretrain`` and ``imgclf publish`` read their images here. An image that cannot be used (missing, too
large, not an image) is skipped with its reason, never fatal: an unlabelled pile of
photos always has a few bad files, and one of them should not cost the run.
No TensorFlow here, so the CLI can list and check images cheaply.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path

from models import storage
from models.errors import InvalidInput
from models.image_checks import check_image, read_image
from models.manifest import IMAGE_EXTENSIONS
from models.prediction import ImageError

log = logging.getLogger("imgclf.images")

_GLOB_CHARS = ("*", "?", "[")


@dataclass
class ImageSet:
    """The bytes of the usable images with their URIs, and one 'uri: reason' line per skipped one."""

    images: list[bytes] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _is_image(uri: str) -> bool:
    return uri.lower().endswith(IMAGE_EXTENSIONS)


def image_uris(source: str) -> list[str]:
    """The images ``source`` names, in a stable order.

    ``source``: a folder (searched recursively for image extensions), a ``.csv`` with an
    ``image_uri`` column (relative paths are relative to the CSV's folder), a ``gs://``
    prefix, or a glob (``photos/*.jpg``, ``gs://bucket/cam*/**.png``).
    """
    if source.lower().endswith(".csv"):
        from beam_pipelines.csv_input import read_header, read_rows

        uris = []
        for row in read_rows(source, read_header(source)):
            if row.error or not row.read_uri:
                log.warning("%s line %d skipped: %s", source, row.line, row.error or "empty image_uri")
                continue
            uris.append(
                str(Path(storage.local_path(row.read_uri)).resolve())
                if storage.is_local(row.read_uri)
                else row.read_uri
            )
        return uris
    if any(c in source for c in _GLOB_CHARS):
        if storage.is_local(source):
            matches = glob.glob(storage.local_path(source), recursive=True)
            return sorted(str(Path(p).resolve()) for p in matches if Path(p).is_file() and _is_image(p))
        return [uri for uri in storage.list_files(source) if _is_image(uri)]
    if storage.is_local(source):
        root = Path(storage.local_path(source))
        if not root.is_dir():
            raise InvalidInput(f"{source} is neither a folder, a .csv file nor a glob")
        return [str(p.resolve()) for p in sorted(root.rglob("*")) if p.is_file() and _is_image(p.name)]
    return [uri for uri in storage.list_files(source.rstrip("/") + "/**") if _is_image(uri)]


def read_images(uris: list[str], *, max_bytes: int, max_pixels: int) -> ImageSet:
    """Reads and header-checks every image; a bad one lands in ``skipped`` with its reason."""
    out = ImageSet()
    for uri in uris:
        try:
            data = read_image(uri, max_bytes)
            check_image(data, max_bytes, max_pixels)
        except ImageError as e:
            out.skipped.append(f"{uri}: {e}")
            continue
        out.images.append(data)
        out.uris.append(uri)
    if out.skipped:
        log.warning("%d of %d images skipped, e.g. %s", len(out.skipped), len(uris), "; ".join(out.skipped[:3]))
    return out


def read_image_source(source: str, *, max_bytes: int, max_pixels: int) -> ImageSet:
    """``image_uris`` then ``read_images``; an empty source is refused (a typo in a path, most often)."""
    uris = image_uris(source)
    if not uris:
        raise InvalidInput(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {source}")
    return read_images(uris, max_bytes=max_bytes, max_pixels=max_pixels)
