"""A light load generator: N concurrent keep-alive clients posting multipart images, for a fixed time.

Requests are pre-encoded bytes written on raw asyncio streams, so the generator costs
little CPU next to the server on the same two cores. Prints one JSON line: requests,
errors, throughput and latency percentiles.

    python -m bench.load_generator --port 8000 --model bench --images DIR --clients 32 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import numpy as np

BOUNDARY = "imgclfbenchboundary"


def request_bytes(host: str, port: int, model: str, image: bytes, key: str | None) -> bytes:
    body = (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST /v1/models/{model}:classify HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {len(body)}\r\n"
        + (f"X-API-Key: {key}\r\n" if key else "")
        + "\r\n"
    )
    return head.encode() + body


async def _client(host, port, requests, stop_at, record_from, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            if started >= record_from:
                if status_line.split()[1] == b"200":
                    latencies.append(time.perf_counter() - started)
                else:
                    errors.append(status_line.decode().strip())
    finally:
        writer.close()


async def run(host, port, model, images, clients, seconds, warmup, key) -> dict:
    requests = [request_bytes(host, port, model, image, key) for image in images]
    latencies: list[float] = []
    errors: list[str] = []
    record_from = time.perf_counter() + warmup
    stop_at = record_from + seconds
    await asyncio.gather(
        *(
            _client(host, port, requests[c:] + requests[:c], stop_at, record_from, latencies, errors)
            for c in range(clients)
        )
    )
    lat = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:3],
        "throughput": len(latencies) / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", required=True, help="Folder of JPEGs to send, round robin.")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=2, help="Seconds of load before recording.")
    parser.add_argument("--key", default=None)
    args = parser.parse_args(argv)
    images = [p.read_bytes() for p in sorted(Path(args.images).glob("*.jpg"))]
    result = asyncio.run(
        run(args.host, args.port, args.model, images, args.clients, args.seconds, args.warmup, args.key)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
