"""The deployment's WSGI application, each request's time in the worker written down: the
half-load measurement serves it, to set what the worker spent beside what the load generator saw.

With BENCH_TIMINGS (a directory) each worker appends one line per request to a file of its own:
when the worker took the request (epoch seconds) and how long it took to answer it, one `write`
of about 30 bytes (a few microseconds). `bench.servers.worker_times()` reads a time window back.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from config.wsgi import application as _application

_directory = os.environ.get("BENCH_TIMINGS")
_file: int | None = None


def application(environ, start_response):
    global _file
    taken, started = time.time(), time.perf_counter()
    try:
        return _application(environ, start_response)
    finally:
        if _directory:
            if _file is None:
                path = Path(_directory) / f"worker-{os.getpid()}.txt"
                _file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.write(_file, f"{taken:.6f} {time.perf_counter() - started:.6f}\n".encode())
