"""The naive baseline for ``make bench-api``: the endpoint a first version would be.

One FastAPI route that decodes the upload with PIL and calls the Keras model on that one
image (the same EfficientNet-Lite0 and head as the served model), on the event loop:
no batching, no in-graph decoding, no worker thread. Same URL as the real service.

    python -m bench.naive_server --port 8001
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import uvicorn
from fastapi import FastAPI, File, UploadFile
from PIL import Image

import models  # noqa: F401  (quiet TensorFlow start-up)
from bench.batch_throughput import classifier_and_spec


def create_app() -> FastAPI:
    classifier, spec, size = classifier_and_spec()
    app = FastAPI()

    @app.get("/readyz")
    def readyz() -> dict:
        return {"ready": True}

    @app.post("/v1/models/{name}:classify")
    async def classify(name: str, image: UploadFile = File(...)) -> dict:  # noqa: B008
        with Image.open(io.BytesIO(await image.read())) as img:
            pixels = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
        probabilities = classifier(pixels[None], training=False).numpy()[0]
        return {
            "labels": spec.decide(probabilities),
            "scores": dict(zip(spec.labels, map(float, probabilities), strict=True)),
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
