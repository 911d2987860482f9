"""One input to classify, from a CSV row (batch) or a Pub/Sub message (stream)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.prediction import ImageError, SourceMessage


@dataclass(frozen=True)
class InputRow:
    """The URI as given, the URI to read, the fields passed through, and why it is unusable.

    A streamed message may carry the image itself in ``content``; then nothing is read.
    """

    image_uri: str
    read_uri: str
    extra: dict[str, Any] = field(default_factory=dict, hash=False)
    line: int = field(default=0, compare=False)  # where the row starts in the file, for messages
    error: ImageError | None = field(default=None, compare=False)  # why the row cannot be used
    content: bytes | None = field(default=None, compare=False, repr=False)
    message: SourceMessage | None = field(default=None, compare=False, repr=False)
