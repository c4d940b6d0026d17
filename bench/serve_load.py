"""A bounded load test of `netspec serve` on loopback: single requests against batched ones.

Starts `netspec serve RUN` itself (a subprocess on a free port), first with `--max-batch 1` (every
request its own forward pass), then with `--max-batch 32` (concurrent requests share one), and
drives each for a fixed time with concurrent clients (asyncio, one kept-alive connection each),
every request one image as JSON: MNIST test digits when $NETSPEC_DATA has them (the answers are
then checked against the labels), else random pixels. Prints, per mode: requests, requests/s,
p50 and p99 latency, errors (4xx, 5xx, lost: a request without an answer), the server's mean batch
and its CPU time per request, and the ratio of batched to single throughput. Exit 1 when any
request got a 5xx or was lost.
The clients run on the same machine: on a small one they compete with the server for the cores.

    NETSPEC_DATA=../shared/data python bench/serve_load.py --run runs/lenet [--seconds 30] [--clients 32]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import itertools
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)  # seconds, of the answered requests
    client_errors: int = 0
    server_errors: int = 0
    lost: int = 0
    right: int = 0
    checked: int = 0
    sent: Iterator[int] = field(default_factory=itertools.count)


def digits(n: int) -> tuple[list[bytes], list[int | None]]:
    """n request bodies of one image each, and their labels (None: random pixels)."""
    base = Path(os.environ.get("NETSPEC_DATA", "")) / "mnist"
    images = base / "t10k-images-idx3-ubyte.gz"
    if images.is_file():
        x = np.frombuffer(gzip.decompress(images.read_bytes()), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
        labels = base / "t10k-labels-idx1-ubyte.gz"
        y: list[int | None] = [int(v) for v in np.frombuffer(gzip.decompress(labels.read_bytes()), np.uint8, offset=8)]
    else:
        x = np.random.default_rng(0).integers(0, 256, (n, 1, 28, 28), dtype=np.uint8)
        y = [None] * n
    bodies = [json.dumps({"inputs": [(img / 255).round(4).tolist()]}).encode() for img in x]
    return bodies, y[:n]


class Server:
    def __init__(self, run: str, max_batch: int, wait_ms: float, device: str) -> None:
        command = [sys.executable, "-m", "netspec", "serve", run, "--port", "0", "--device", device]
        command += ["--max-batch", str(max_batch), "--wait-ms", str(wait_ms)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout or []], daemon=True).start()
        line = lines.get(timeout=120)
        if " on http://" not in line:
            self.proc.kill()
            sys.exit(f"the server did not start: {line!r}")
        self.url = line.split(" on ", 1)[1].split()[0]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=60)


async def client(url: str, bodies: list[bytes], labels: list[int | None], until: float, t: Tally) -> None:
    """One keep-alive connection sending requests one after another until the time is up."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        while time.perf_counter() < until:
            i = next(t.sent) % len(bodies)  # one sequence for all clients: every mode sends the same digits
            start = time.perf_counter()
            try:
                status, body = await exchange(reader, writer, host, bodies[i])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                t.lost += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
                continue
            record(t, status, body, labels[i], time.perf_counter() - start)
    finally:
        writer.close()


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, body: bytes
) -> tuple[int, bytes]:
    """One POST /predict over a kept-alive connection (a minimal HTTP/1.1 client: httpx costs the
    client more CPU than the server spends, which on a small machine would measure the client)."""
    head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    await writer.drain()
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length")
    return status, await reader.readexactly(length)


def record(t: Tally, status: int, body: bytes, label: int | None, seconds: float) -> None:
    if status >= 500:
        t.server_errors += 1
    elif status >= 400:
        t.client_errors += 1
    else:
        t.latencies.append(seconds)
        if label is not None:
            t.checked += 1
            t.right += json.loads(body)["predictions"][0]["class"] == str(label)


async def drive(url: str, bodies: list[bytes], labels: list[int | None], clients: int, seconds: float) -> Tally:
    tally = Tally()
    until = time.perf_counter() + seconds
    await asyncio.gather(*(client(url, bodies, labels, until, tally) for _ in range(clients)))
    return tally


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time (Linux; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace, mode: str, max_batch: int, bodies: list[bytes], labels: list[int | None]) -> dict:
    server = Server(args.run, max_batch, args.wait_ms, args.device)
    try:
        asyncio.run(drive(server.url, bodies, labels, args.clients, args.warmup))  # not counted
        before = httpx.get(server.url + "/info").json()["batches"]
        started, cpu = time.perf_counter(), cpu_seconds(server.proc.pid)
        tally = asyncio.run(drive(server.url, bodies, labels, args.clients, args.seconds))
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(server.proc.pid) - cpu
        after = httpx.get(server.url + "/info").json()["batches"]
    finally:
        code = server.stop()
    passes = after["forward_passes"] - before["forward_passes"]
    ms = sorted(1000 * s for s in tally.latencies)
    return {
        "mode": mode,
        "max_batch": max_batch,
        "requests": len(ms),
        "per_second": len(ms) / elapsed,
        "p50": statistics.median(ms) if ms else float("nan"),
        "p99": ms[min(len(ms) - 1, int(0.99 * len(ms)))] if ms else float("nan"),
        "4xx": tally.client_errors,
        "5xx": tally.server_errors,
        "lost": tally.lost,
        "mean_batch": (after["items"] - before["items"]) / passes if passes else 0.0,
        "cpu_ms": 1000 * cpu / len(ms) if ms else float("nan"),
        "accuracy": tally.right / tally.checked if tally.checked else None,
        "exit": code,
    }


def table(rows: list[dict]) -> str:
    head = "| mode | max batch | requests | requests/s | p50 ms | p99 ms | 4xx | 5xx | lost | mean batch "
    head += "| server CPU ms/request | accuracy |"
    lines = [head, "|" + " --- |" * 12]
    for r in rows:
        accuracy = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
        lines.append(
            f"| {r['mode']} | {r['max_batch']} | {r['requests']:,} | {r['per_second']:.1f} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['4xx']} | {r['5xx']} | {r['lost']} | {r['mean_batch']:.2f} | {r['cpu_ms']:.2f} | "
            f"{accuracy} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="a run directory of specs/mnist.net (LeNet)")
    parser.add_argument("--seconds", type=float, default=30, help="measured time per mode (default 30)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured time first (default 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--max-batch", type=int, default=32, help="the batched mode's --max-batch (default 32)")
    parser.add_argument("--wait-ms", type=float, default=5, help="the server's --wait-ms (default 5)")
    parser.add_argument("--device", default="cpu", help="the server's --device (default cpu)")
    args = parser.parse_args()
    bodies, labels = digits(512)
    print(f"{args.clients} clients, {args.seconds:g} s per mode, one image per request, {os.cpu_count()} CPU cores")
    rows = []
    for mode, max_batch in (("single", 1), ("batched", args.max_batch)):
        rows.append(measure(args, mode, max_batch, bodies, labels))
        print(f"{mode}: {rows[-1]['per_second']:.1f} requests/s", file=sys.stderr)
    print(table(rows))
    print(f"batched / single: {rows[1]['per_second'] / rows[0]['per_second']:.2f}x requests/s")
    failed = any(r["5xx"] or r["lost"] or r["exit"] != 130 for r in rows)
    if failed:
        print("FAILED: a 5xx, a lost request or a server that did not stop cleanly", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
