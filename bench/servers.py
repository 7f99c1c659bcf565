"""The production servers compared, started as the deployment would run them.

Each runs `config.wsgi:application` with one worker process per core. Peak memory per worker is
the peak resident set size (VmHWM) the kernel recorded for each worker process.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import percentile

ROOT = Path(__file__).resolve().parent.parent

APP = "config.wsgi:application"
TIMED_APP = "bench.timed_wsgi:application"  # the same, each request's time written down
DRAIN_NICENESS = 10  # the worker's Nice= in deploy/systemd/licensing-worker.service

SERVERS = {
    "gunicorn-sync": lambda port, workers, app=APP: [
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "sync",
        "--log-level", "warning", "--backlog", "2048",
    ],
    "gunicorn-gthread": lambda port, workers, app=APP: [
        sys.executable, "-m", "gunicorn", app,
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--worker-class", "gthread",
        "--threads", "4", "--log-level", "warning", "--backlog", "2048",
    ],
    "granian": lambda port, workers, app=APP: [
        sys.executable, "-m", "granian", "--interface", "wsgi", app,
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--blocking-threads", "1", "--no-access-log", "--log-level", "warning",
    ],
}  # fmt: skip


def available(name: str) -> bool:
    module = "granian" if name.startswith("granian") else "gunicorn"
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    result, queue = [], [pid]
    while queue:
        for child in children(queue.pop()):
            result.append(child)
            queue.append(child)
    return result


def peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Server:
    name: str
    port: int
    workers: int
    process: subprocess.Popen | None = None
    log: Path | None = None
    drainer: subprocess.Popen | None = None
    app: str = APP  # the WSGI application, module:name

    def start(self, env: dict[str, str], log: Path, timeout: float = 60) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                SERVERS[self.name](self.port, self.workers, self.app),
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )
            # The deployment's drain job for buffered records (README): with Redis they would
            # otherwise pile up in Redis for the whole run.
            # At the deployment's priority too (Nice=10, deploy/systemd/licensing-worker.service).
            self.drainer = subprocess.Popen(
                [sys.executable, "manage.py", "drain_records", "--every", "2"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=output,
                preexec_fn=lambda: os.nice(DRAIN_NICENESS),  # the driver starts no threads
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()  # the drain job too, or it outlives the run
                raise RuntimeError(f"{self.name} exited: {log.read_text()[-2000:]}")
            if self.answers() and len(self.worker_pids()) >= self.workers:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout}s")

    def answers(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/bench/reference", headers={"Host": "localhost"})
            return connection.getresponse().status == 200
        except OSError:
            return False

    def worker_pids(self) -> list[int]:
        """The processes that run the application (the master only supervises them)."""
        if self.process is None:
            return []
        return [pid for pid in descendants(self.process.pid) if peak_rss_mib(pid)]

    def peak_worker_memory_mib(self) -> float | None:
        values = [peak_rss_mib(pid) or 0 for pid in self.worker_pids()]
        return max(values) if values else None

    def stop(self) -> None:
        if self.drainer is not None and self.drainer.poll() is None:
            self.drainer.terminate()
            self.drainer.wait(timeout=15)
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def worker_times(directory: str, start: float, end: float) -> dict:
    """p50, p99 and the maximum of the workers' times (ms) of the requests they took in [start,
    end], as TIMED_APP wrote them into `directory`."""
    times = []
    for path in Path(directory).glob("worker-*.txt"):
        for line in path.read_text().splitlines():
            taken, spent = (float(part) for part in line.split())
            if start <= taken <= end:
                times.append(spent * 1000)
    if not times:
        return {}
    return {  # the percentiles as the load generator takes the client's
        "worker_requests": len(times),
        "worker_p50_ms": percentile(times, 50),
        "worker_p99_ms": percentile(times, 99),
        "worker_max_ms": max(times),
    }
