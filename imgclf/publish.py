"""``imgclf publish``: send images to a Pub/Sub topic at a steady rate, for demos and load tests.

Images come from a folder (recursively), a CSV with an ``image_uri`` column, or a
``gs://`` prefix. Each becomes a JSON message ``{"image_uri": ...}`` or, with ``raw``,
a message carrying the file's bytes with ``content-type: image/...``. With
``PUBSUB_EMULATOR_HOST`` set the official client talks to the emulator.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field

from models import storage
from models.errors import InvalidInput

log = logging.getLogger("imgclf.publish")


@dataclass
class PublishReport:
    published: int = 0
    failed: int = 0
    seconds: float = 0.0
    message_ids: list[str] = field(default_factory=list)
    publish_times: list[float] = field(default_factory=list)  # time.time() when each publish was sent

    @property
    def rate(self) -> float:
        return self.published / self.seconds if self.seconds else 0.0


def message_for(uri: str, raw: bool, attributes: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    """The data and attributes of one message about ``uri``."""
    attributes = dict(attributes or {})
    if raw:
        content_type = mimetypes.guess_type(uri)[0] or "image/jpeg"
        return storage.read_bytes(uri), {**attributes, "content-type": content_type, "image_uri": uri}
    return json.dumps({"image_uri": uri}).encode(), attributes


def publish(
    topic: str,
    uris: Iterable[str],
    rate: float = 10.0,
    raw: bool = False,
    count: int | None = None,
    on_progress: Callable[[PublishReport], None] | None = None,
) -> PublishReport:
    """Publishes one message per URI (cycling when ``count`` exceeds them) at ``rate`` per second."""
    from google.cloud import pubsub_v1

    uris = list(uris)
    if not uris:
        raise InvalidInput("no images to publish")
    total = count or len(uris)
    publisher = pubsub_v1.PublisherClient()
    report = PublishReport()
    pending: list[futures.Future] = []
    started = time.monotonic()
    report_every = max(int(rate * 5), 1) if rate > 0 else 500  # about every 5 s
    for i in range(total):
        due = started + i / rate if rate > 0 else 0
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        data, attributes = message_for(uris[i % len(uris)], raw)
        report.publish_times.append(time.time())
        pending.append(publisher.publish(topic, data, **attributes))
        if on_progress and (i + 1) % report_every == 0:
            report.published = i + 1
            report.seconds = time.monotonic() - started
            on_progress(report)
    report.published = 0
    for future in pending:
        try:
            report.message_ids.append(future.result(timeout=60))
            report.published += 1
        except Exception as e:  # one failed publish is counted, not fatal
            log.warning("a publish failed: %s", e)
            report.failed += 1
    report.seconds = time.monotonic() - started
    return report
