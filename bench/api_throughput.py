"""``make bench-api``: the prediction API under load, against its two baselines, in one run.

- ceiling: the exported signature on in-memory batches of 64, in-process (no HTTP);
- naive: the endpoint a first version would be (bench/naive_server.py: PIL decode and one
  Keras call per request on the event loop);
- unbatched: ``imgclf serve`` with dynamic batching off (max batch size 1);
- batched: ``imgclf serve`` as shipped (dynamic batching), at 1, 8, 32 and 64 clients, on
  TensorFlow (``IMGCLF_RUNTIME=tf``) and on the model's OpenVINO artifact (``openvino``): both
  servers up at once, the load alternating between them, three rounds each at 32 clients.

Every server is a real uvicorn process (one worker) on loopback; the load comes from
``bench.load_generator`` in another process. EfficientNet-Lite0, 224x224 JPEGs.
Targets (issue 4): batched throughput at 32 clients >= 0.8 x ceiling and >= 3 x naive;
p99 at 32 clients < 4 x the single-client p50; RSS per worker < 1.5 GB; (issue 12) batched on
OpenVINO at 32 clients >= 1.7 x batched on TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

import models  # noqa: F401  (quiet TensorFlow start-up)
from bench.batch_throughput import ceiling, make_jpegs, make_model
from bench.results import save
from tests.helpers import free_port

HERE = Path(__file__).resolve().parent
KEY = "bench-key"


class Server:
    """A server process in its own process group, ready when /readyz says so.

    ``imgclf serve`` by default; ``naive=True`` runs bench.naive_server instead.
    """

    def __init__(
        self, work: Path, max_batch_size: int = 1, max_delay_ms: float = 0.0, naive: bool = False, runtime: str = "tf"
    ):
        self.port = free_port()
        env = {
            **os.environ,
            "IMGCLF_RUNTIME": runtime,
            "IMGCLF_MODEL_ROOT": str(work / "registry"),
            "IMGCLF_API_KEYS": KEY,
            "IMGCLF_MAX_BATCH_SIZE": str(max_batch_size),
            "IMGCLF_MAX_QUEUE_DELAY_MS": str(max_delay_ms),
            "IMGCLF_JOBS_DB": f"sqlite:///{work / 'jobs.db'}",
            "IMGCLF_JOBS_DIR": str(work / "jobs"),
        }
        cmd = [sys.executable, "-m", "imgclf.cli", "serve", "--port", str(self.port), "--workers", "1"]
        if naive:
            cmd = [sys.executable, "-m", "bench.naive_server", "--port", str(self.port)]
        self.cmd, self.env, self.log_path = cmd, env, work / f"server-{self.port}.log"

    def __enter__(self) -> Server:
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise SystemExit(f"server did not become ready; see {self.log_path}")

    def rss_mb(self) -> float:
        """Resident memory of the worker (the process itself with one worker)."""
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def __exit__(self, *exc) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)
        self.log.close()


def load(port: int, images: Path, clients: int, seconds: float) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.load_generator",
            "--port",
            str(port),
            "--model",
            "bench",
            "--images",
            str(images),
            "--clients",
            str(clients),
            "--seconds",
            str(seconds),
            "--key",
            KEY,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _row(name: str, r: dict) -> str:
    return (
        f"{name:<10} {r['clients']:>7} {r['throughput']:>9.1f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
        f"{r['p99_ms']:>8.1f} {r['errors']:>6}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(HERE / "work" / "api"))
    parser.add_argument("--seconds", type=float, default=15, help="Measured seconds per load level.")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3, help="Rounds per runtime at 32 clients; the median counts.")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    images = work / "images"
    paths = make_jpegs(images, 256, 224)
    saved_model = make_model(work / "registry", paths)

    runtimes = ("tf", "openvino")
    ceilings = {}
    for runtime in runtimes:
        print(f"ceiling, {runtime}: in-memory batches of 64 ...", flush=True)
        ceilings[runtime] = max(ceiling(saved_model, paths * 2, runtime=runtime) for _ in range(2))
        print(f"   {ceilings[runtime]:.1f} img/s", flush=True)
    ceiling_ips = ceilings["tf"]

    levels = [int(c) for c in args.clients.split(",")]
    results: dict[str, list[dict]] = {"naive": [], "unbatched": [], "batched": [], "batched_openvino": []}
    rss = {}
    print("\nserver     clients  req/s     p50 ms   p95 ms   p99 ms  errors", flush=True)
    for kind, server, levels_here in (
        ("naive", Server(work, naive=True), (1, 32)),
        ("unbatched", Server(work, 1, 0.0), (1, 32)),
    ):
        with server:
            for clients in levels_here:
                results[kind].append(load(server.port, images, clients, args.seconds))
                print(_row(kind, results[kind][-1]), flush=True)
            rss[kind] = server.rss_mb()
    # Both runtimes' servers up at once, the load alternating between them level by level, so a slow spell of
    # the machine hits both; at 32 clients (the target's level) ``--rounds`` rounds each, the median kept.
    kinds = {"tf": "batched", "openvino": "batched_openvino"}
    servers = {rt: Server(work, args.max_batch_size, args.max_delay_ms, runtime=rt) for rt in runtimes}
    with servers["tf"], servers["openvino"]:
        for clients in levels:
            rounds: dict[str, list[dict]] = {rt: [] for rt in runtimes}
            for _ in range(args.rounds if clients == 32 else 1):
                for runtime in runtimes:
                    rounds[runtime].append(load(servers[runtime].port, images, clients, args.seconds))
                    print(_row(kinds[runtime].replace("batched_", "batch-"), rounds[runtime][-1]), flush=True)
            for runtime, measured in rounds.items():
                median = sorted(measured, key=lambda r: r["throughput"])[len(measured) // 2]
                results[kinds[runtime]].append({**median, "rounds_req_per_s": [r["throughput"] for r in measured]})
        for runtime, server in servers.items():
            rss[kinds[runtime]] = server.rss_mb()

    by_clients = {r["clients"]: r for r in results["batched"]}
    at32, single = by_clients.get(32), by_clients.get(1)
    naive32 = next(r for r in results["naive"] if r["clients"] == 32)
    unbatched32 = next(r for r in results["unbatched"] if r["clients"] == 32)
    checks = {}
    if at32:
        checks["batched@32 / ceiling >= 0.8"] = at32["throughput"] / ceiling_ips
        checks["batched@32 / naive@32 >= 3"] = at32["throughput"] / naive32["throughput"]
        checks["batched@32 / unbatched@32"] = at32["throughput"] / unbatched32["throughput"]
        if single:
            checks["p99@32 / p50@1 < 4"] = at32["p99_ms"] / single["p50_ms"]
        ov32 = next((r for r in results["batched_openvino"] if r["clients"] == 32), None)
        if ov32:
            checks["openvino@32 / tf@32 >= 1.7"] = ov32["throughput"] / at32["throughput"]
            checks["openvino@32 / openvino ceiling"] = ov32["throughput"] / ceilings["openvino"]
    print(
        f"\nceiling tf {ceiling_ips:.1f} img/s, openvino {ceilings['openvino']:.1f} img/s; RSS per worker: "
        + ", ".join(f"{kind} {mb:.0f} MB" for kind, mb in rss.items())
    )
    for name, value in checks.items():
        print(f"{name:<30} {value:6.2f}")
    save(
        "api_throughput",
        {
            "settings": {"max_batch_size": args.max_batch_size, "max_delay_ms": args.max_delay_ms},
            "ceiling_img_per_s": ceiling_ips,
            "ceilings_img_per_s": ceilings,
            "results": results,
            "rss_mb": rss,
            "checks": checks,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
