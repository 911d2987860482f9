"""Console logging for our commands: our progress lines at INFO, other libraries at WARNING."""

from __future__ import annotations

import logging


class _DropKnownNoise(logging.Filter):
    # Beam 2.77 fails to import its ModelManager without torch and then warns on every batch
    # that it cannot read memory usage; the warning says nothing about this run.
    def filter(self, record: logging.LogRecord) -> bool:
        return "Resource module is not available" not in record.getMessage()


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_DropKnownNoise())
    logging.getLogger("imgclf").setLevel(logging.DEBUG if verbose else logging.INFO)
