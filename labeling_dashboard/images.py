"""Images for the page: read within the size limits, shrunk for the browser, or a reason.

The dashboard only shows images that are in the label store (annotators cannot name
others), never from imgclf's internal stores; anything that cannot be shown returns its
reason, which the page shows in a placeholder beside "mark unusable".
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from models.image_checks import check_image, read_image
from models.locations import internal_store, normalise
from models.settings import Settings


@dataclass(frozen=True)
class Shown:
    data: bytes | None  # PNG or JPEG bytes for the browser
    error: str | None = None


def load(uri: str, settings: Settings, max_side: int) -> Shown:
    try:
        store = internal_store(normalise(uri), settings.internal_stores())
        if store:
            return Shown(None, f"inside {store}, which the dashboard does not read")
        data = read_image(uri, settings.max_image_bytes)
        check_image(data, settings.max_image_bytes, settings.max_image_pixels)
        with Image.open(io.BytesIO(data)) as image:
            image.seek(0)
            image = image.convert("RGB") if image.mode not in ("RGB", "L") else image.copy()
        image.thumbnail((max_side, max_side))
        out = io.BytesIO()
        image.save(out, "PNG" if max_side <= 256 else "JPEG", quality=90)
        return Shown(out.getvalue())
    except Exception as e:  # every failure is a placeholder with its reason, never a traceback
        return Shown(None, str(e).splitlines()[0][:300] or type(e).__name__)
