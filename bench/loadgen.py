"""Load generators, each run as a separate process: wrk when installed, else a Python client.

`python -m bench.loadgen` is the Python client: HTTP/1.1 over keep-alive connections (reopened
when the server closes them), either closed-loop (`--concurrency` connections sending as fast as
answers come: the maximum throughput) or open-loop (`--rate` requests per second on a fixed
schedule; a latency is measured from the request's scheduled time, so a server that falls behind
shows it instead of slowing the schedule). It prints one JSON object.

In open loop the client's own delays are measured too: `client_lag` is how late a request left
when a connection was free at its scheduled time (the event loop woke late: the client, not the
server, was behind), and `sent_rate` the rate actually sent within the schedule. `python_client`
spreads an open loop over several processes (`clients`, each a share of the rate on an interleaved
schedule) and merges their latencies; a figure whose client lagged is marked `client_limited`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field


@dataclass
class Target:
    port: int
    path: str
    host: str
    method: str = "GET"
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    address: str = "127.0.0.1"  # where the server listens (an app host of deploy/local-cluster)

    def request_bytes(self) -> bytes:
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        body = self.body.encode()
        if self.method != "GET" or body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


async def _read_response(reader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding" and "chunked" in value:
            chunked = True
        elif name == "connection" and value == "close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status, close


# An open-loop figure is the server's only if the client sent on time: a p99 lag above this share
# of the p99 latency, or less than this share of the scheduled rate sent within the schedule,
# marks it client-limited.
CLIENT_LAG_SHARE = 0.25
SENT_RATE_SHARE = 0.95


async def _run(
    target: Target,
    concurrency: int,
    duration: float,
    rate: float | None,
    phase: float = 0.0,
    start: float | None = None,
) -> dict:
    """`phase` (seconds) offsets this client's schedule, `start` (time.time()) is its common zero:
    several processes share one schedule, each sending one request of every `clients`."""
    payload = target.request_bytes()
    latencies: list[float] = []
    lags: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    sent_in_time = 0
    if start is not None:  # wait for the common zero (processes start at different moments)
        await asyncio.sleep(max(0.0, start - time.time()))
    start = time.perf_counter() + phase
    end = start + duration - phase
    counter = iter(range(10**12))

    async def worker():
        nonlocal errors, sent_in_time
        reader = writer = None
        while True:
            if rate:
                scheduled = start + next(counter) / rate
                if scheduled >= end:
                    break
                delay = scheduled - time.perf_counter()
                if delay > 0:  # free before its time: any lateness now is the client's own
                    await asyncio.sleep(delay)
                    lags.append(time.perf_counter() - scheduled)
                if time.perf_counter() < end:
                    sent_in_time += 1
            else:
                scheduled = time.perf_counter()
                if scheduled >= end:
                    break
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(target.address, target.port)
                writer.write(payload)
                status, close = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
                continue
            latencies.append(time.perf_counter() - scheduled)
            statuses[status] = statuses.get(status, 0) + 1
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return _figures(latencies, lags, statuses, errors, elapsed, rate, sent_in_time, duration)


def _figures(latencies, lags, statuses, errors, elapsed, rate, sent_in_time, duration) -> dict:
    ok = sum(count for status, count in statuses.items() if status < 400)
    figures = {
        "tool": "python",
        "requests": len(latencies),
        "ok": ok,
        "errors": errors + len(latencies) - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p90_ms": percentile(latencies, 90) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else float("nan"),
        "target_rate": rate,
    }
    if rate:
        figures["sent_rate"] = sent_in_time / duration
        figures["client_lag_p99_ms"] = percentile(lags, 99) * 1000 if lags else 0.0
        figures["client_limited"] = (
            figures["client_lag_p99_ms"] > CLIENT_LAG_SHARE * figures["p99_ms"]
            or figures["sent_rate"] < SENT_RATE_SHARE * rate
        )
        figures["latencies"] = latencies
        figures["lags"] = lags
        figures["sent_in_time"] = sent_in_time
    return figures


def merge(parts: list[dict], rate: float, duration: float) -> dict:
    """One open-loop figure from the clients that shared its schedule."""
    statuses: dict[int, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[int(status)] = statuses.get(int(status), 0) + count
    merged = _figures(
        [v for part in parts for v in part["latencies"]],
        [v for part in parts for v in part["lags"]],
        statuses,
        sum(part["errors"] - (part["requests"] - part["ok"]) for part in parts),
        max(part["seconds"] for part in parts),
        rate,
        sum(part["sent_in_time"] for part in parts),
        duration,
    )
    merged["clients"] = len(parts)
    return merged


def python_client(
    target: Target, concurrency: int, duration: float, rate=None, clients: int = 1
) -> dict:
    """Run the Python client in a process of its own (open loop: `clients` processes, each with
    `concurrency` connections and a share of `rate`) and return its figures."""
    if rate and clients > 1:
        start = time.time() + 1.0  # every process is up by then
        commands = [
            _command(target, concurrency, duration)
            + ["--rate", str(rate / clients), "--phase", str(i / rate), "--start", str(start)]
            for i in range(clients)
        ]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        running = [
            subprocess.Popen(c, stdout=subprocess.PIPE, text=True, cwd=root) for c in commands
        ]
        parts = [json.loads(process.communicate()[0]) for process in running]
        if any(process.returncode for process in running):
            raise RuntimeError("an open-loop client failed")
        return _lean(merge(parts, rate, duration))
    command = _command(target, concurrency, duration)
    if rate:
        command += ["--rate", str(rate)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run(command, capture_output=True, text=True, cwd=root, check=True)
    return _lean(json.loads(result.stdout))


def _lean(figures: dict) -> dict:
    """The figures without the raw samples (kept only to merge clients)."""
    return {k: v for k, v in figures.items() if k not in ("latencies", "lags", "sent_in_time")}


def _command(target: Target, concurrency: int, duration: float) -> list[str]:
    import sys

    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--address", target.address,
        "--port", str(target.port),
        "--path", target.path,
        "--host", target.host,
        "--method", target.method,
        "--body", target.body,
        "--concurrency", str(concurrency),
        "--duration", str(duration),
    ]  # fmt: skip
    for name, value in target.headers.items():
        command += ["--header", f"{name}: {value}"]
    return command


WRK_SCRIPT = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["Host"] = {host}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK-JSON {{\\"requests\\": %d, \\"seconds\\": %f, \\"p50_ms\\": %f, \\"p90_ms\\": %f, " ..
    "\\"p99_ms\\": %f, \\"max_ms\\": %f, \\"status_errors\\": %d, \\"socket_errors\\": %d}}\\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
"""


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for this text


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def wrk(target: Target, concurrency: int, duration: float) -> dict:
    headers = dict(target.headers)
    if target.method != "GET":
        headers["Content-Type"] = "application/json"
    script = WRK_SCRIPT.format(
        method=_lua(target.method),
        body=_lua(target.body) if target.body else "nil",
        host=_lua(target.host),
        headers="\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()),
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        result = subprocess.run(
            [
                "wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s",
                "--timeout", "10s", "-s", file.name,
                f"http://{target.address}:{target.port}{target.path}",
            ],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        os.unlink(file.name)
    match = re.search(r"WRK-JSON (\{.*\})", result.stdout)
    if not match:
        raise RuntimeError(f"wrk printed no figures: {result.stdout}\n{result.stderr}")
    figures = json.loads(match.group(1))
    errors = figures.pop("status_errors") + figures.pop("socket_errors")
    return {
        "tool": "wrk",
        **figures,
        "ok": figures["requests"] - errors,
        "errors": errors,
        "rps": figures["requests"] / figures["seconds"],
        "target_rate": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body", default="")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests per second")
    parser.add_argument("--phase", type=float, default=0.0, help="open loop: schedule offset, s")
    parser.add_argument("--start", type=float, default=None, help="open loop: common zero, epoch")
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    target = Target(
        args.port, args.path, args.host, args.method, args.body, headers, address=args.address
    )
    figures = asyncio.run(
        _run(target, args.concurrency, args.duration, args.rate, args.phase, args.start)
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
