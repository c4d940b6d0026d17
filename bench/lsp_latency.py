"""How responsive is `netspec lsp`? Run: python bench/lsp_latency.py [--edits N] [--lines N] [--starts N]

(a) start-up: from spawning `python -m netspec lsp` to its `initialize` response (median of
    --starts runs);
(b) diagnostics: a generated spec of about --lines lines (the one bench/check_speed.py uses) is
    opened, then edited --edits times, one incremental didChange at a time (a typo made, then
    fixed, then a constant changed, ...); each latency is from sending didChange to receiving
    the publishDiagnostics of that version (goal: median under 20 ms). Next to it, netspec's
    own parse+check of the same text in-process, which is most of that time;
(c) hover and completion requests on the same document (round trip).

Standard library and netspec only (a hand-written JSON-RPC client). Prints a table; exits 0
whatever the numbers.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
GOAL_MS = 20.0
URI = "file:///bench/lsp_latency.net"


class Server:
    """`netspec lsp` in a subprocess, with messages timestamped as they arrive."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netspec", "lsp"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.inbox: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.next_id = 0
        self.answered = 0.0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if line == b"\r\n":
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(out.read(length))
            self.inbox.put((time.perf_counter(), message))

    def send(self, message: dict[str, Any]) -> float:
        body = json.dumps(message).encode("utf-8")
        assert self.proc.stdin is not None
        sent = time.perf_counter()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return sent

    def notify(self, method: str, params: Any) -> float:
        return self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any) -> tuple[float, Any]:
        """(round-trip seconds, result)."""
        self.next_id += 1
        msg_id = self.next_id
        sent = self.send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        at, message = self.until(lambda m: m.get("id") == msg_id and "method" not in m)
        self.answered = at
        return at - sent, message.get("result")

    def until(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            at, message = self.inbox.get(timeout=max(0.01, deadline - time.monotonic()))
            if pred(message):
                return at, message

    def initialize(self) -> float:
        """Seconds from spawning the process to the initialize response."""
        self.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        self.notify("initialized", {})
        return self.answered - self.started

    def diagnostics(self, version: int) -> tuple[float, list[Any]]:
        at, message = self.until(
            lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"].get("version") == version
        )
        return at, message["params"]["diagnostics"]

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(10)
        except Exception:
            self.proc.kill()


def edits(text: str, count: int) -> list[tuple[dict[str, Any], str]]:
    """Incremental edits, each with the text after it: break a layer name, fix it, change a constant."""
    lines = text.split("\n")
    relu = next(i for i, line in enumerate(lines) if line.strip().startswith("dense(") and "-> relu" in line)
    let = next(i for i, line in enumerate(lines) if line.startswith("let width"))
    end_relu = len(lines[relu])
    value_at = lines[let].index("=") + 2
    value = lines[let][value_at:]
    out = []
    for k in range(count):
        step = k % 4
        if step == 0:  # relu -> reluu: an error appears
            change = {"range": _range(relu, end_relu, relu, end_relu), "text": "u"}
            lines[relu] += "u"
        elif step == 1:  # and is fixed
            change = {"range": _range(relu, end_relu, relu, end_relu + 1), "text": ""}
            lines[relu] = lines[relu][:-1]
        else:  # a constant changes: shapes and parameter counts change
            new = str(16 + (k * 7) % 48)
            change = {"range": _range(let, value_at, let, value_at + len(value)), "text": new}
            lines[let] = lines[let][:value_at] + new
            value = new
        out.append((change, "\n".join(lines)))
    return out


def _summary(diags: list[dict[str, Any]]) -> list[tuple[str, int, str]]:
    return [(d["code"], d["range"]["start"]["line"], d["message"].split("\nhint: ")[0]) for d in diags]


def _range(line: int, char: int, end_line: int, end_char: int) -> dict[str, Any]:
    return {"start": {"line": line, "character": char}, "end": {"line": end_line, "character": end_char}}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--edits", type=int, default=50, help="didChange edits to time")
    ap.add_argument("--lines", type=int, default=300, help="size of the generated spec")
    ap.add_argument("--starts", type=int, default=5, help="server start-ups to time (median)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from check_speed import generate

    from netspec.ir.pipeline import compile_text

    starts = []
    for _ in range(args.starts):
        server = Server()
        starts.append(server.initialize())
        server.close()

    text = generate(args.lines)
    n_lines = text.count("\n")
    server = Server()
    server.initialize()
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": URI, "languageId": "netspec", "version": 1, "text": text}},
    )
    _, first = server.diagnostics(1)
    assert first == [], f"the generated spec should check clean: {first[:2]}"
    latencies = []
    compiles = []
    wrong = 0
    for version, (change, after) in enumerate(edits(text, args.edits), start=2):
        sent = server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": URI, "version": version}, "contentChanges": [change]},
        )
        at, diags = server.diagnostics(version)
        latencies.append(at - sent)
        start = time.perf_counter()
        expected = compile_text(after, URI).diagnostics
        compiles.append(time.perf_counter() - start)
        wrong += _summary(diags) != [(d.code, d.line - 1, d.message) for d in expected]

    # edits that make a syntax error, and fix it: with an error, the whole text is parsed again
    syntax = []
    version = args.edits + 1
    lines = after.split("\n")
    where = next(i for i, line in enumerate(lines) if line.strip().startswith("maxpool("))
    for k in range(20):
        version += 1
        end = len(lines[where])
        change = {"range": _range(where, end, where, end + (k % 2)), "text": "" if k % 2 else ")"}
        sent = server.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": URI, "version": version}, "contentChanges": [change]},
        )
        at, diags = server.diagnostics(version)
        assert bool(diags) == (k % 2 == 0), diags
        if k % 2 == 0:  # the edit that makes the error (the next one fixes it)
            syntax.append(at - sent)

    hover_times, completion_times = [], []
    lines = after.split("\n")
    target = next(i for i, line in enumerate(lines) if "conv2d(" in line)
    position = {"line": target, "character": lines[target].index("conv2d(") + 2}
    for _ in range(20):
        seconds, _ = server.request("textDocument/hover", {"textDocument": {"uri": URI}, "position": position})
        hover_times.append(seconds)
        seconds, _ = server.request(
            "textDocument/completion",
            {"textDocument": {"uri": URI}, "position": {"line": target, "character": lines[target].index("(") + 1}},
        )
        completion_times.append(seconds)
    server.close()

    median = statistics.median(latencies)
    rows = [
        (f"start-up to initialize response (median of {args.starts})", ms(statistics.median(starts)), "", ""),
        (
            f"didChange -> publishDiagnostics, {n_lines}-line spec, median of {len(latencies)}",
            ms(median),
            f"< {GOAL_MS:.0f} ms",
            "yes" if median * 1000 < GOAL_MS else "NO",
        ),
        ("  the same, max", ms(max(latencies)), "", ""),
        ("  the same, 90th percentile", ms(sorted(latencies)[int(len(latencies) * 0.9) - 1]), "", ""),
        ("  netspec parse+check of that text in-process, median", ms(statistics.median(compiles)), "", ""),
        ("  diagnostics that differed from compile_text", str(wrong), "0", "yes" if wrong == 0 else "NO"),
        ("  an edit that makes a syntax error (full re-parse), median of 10", ms(statistics.median(syntax)), "", ""),
        ("hover round trip, median of 20", ms(statistics.median(hover_times)), "", ""),
        ("completion round trip, median of 20", ms(statistics.median(completion_times)), "", ""),
    ]
    header = ("measure", "time", "goal", "ok")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print(f"\n(python {sys.version.split()[0]}; latencies include JSON-RPC over pipes both ways)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
