"""Instructions per request of each endpoint, counted by valgrind's callgrind: a repeatable figure
(times vary by ±30 % on a shared machine, instruction counts by about 1 %).

`measure()` runs this module under `valgrind --tool=callgrind --dump-before=os_getppid`. In one
process it warms each endpoint up (in-process, through Django's test client, as the query counts
are taken), calls `os.getppid()`, runs REQUESTS requests and calls `os.getppid()` again. callgrind
writes a profile part each time `os.getppid` is entered, so the part between the two calls holds
exactly those requests, whatever startup and warm-up cost.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench.env import ROOT

REQUESTS = 20
WARMUP = 5


def available() -> bool:
    return shutil.which("valgrind") is not None


def measure(targets, environment: dict[str, str]) -> dict[str, float]:
    """{endpoint: instructions per request} of the in-process path."""
    with tempfile.TemporaryDirectory() as work:
        spec = Path(work) / "targets.json"
        spec.write_text(json.dumps([[name, asdict(target)] for name, target in targets]))
        out = Path(work) / "callgrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--dump-before=os_getppid"]
            + [f"--callgrind-out-file={out}", sys.executable, "-m", "bench.instructions", spec],
            env=environment,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        if done.returncode != 0:
            raise SystemExit(f"callgrind failed:\n{done.stderr[-3000:]}")
        parts = sorted(Path(work).glob("callgrind.out.*"), key=lambda p: int(p.suffix[1:]))
        totals = [_total(part) for part in parts]
    # Part 1: startup and the first warm-up; then, per endpoint, its requests and the next warm-up.
    return {name: totals[2 * i + 1] / REQUESTS for i, (name, _) in enumerate(targets)}


def _total(part: Path) -> int:
    match = re.search(r"^(?:summary|totals): (\d+)", part.read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def main(spec: str) -> None:
    from bench import env as bench_env
    from bench.loadgen import Target
    from bench.run import in_process_call

    bench_env.setup_django()
    for _, fields in json.loads(Path(spec).read_text()):
        call = in_process_call(Target(**fields))
        for _ in range(WARMUP):
            call()
        os.getppid()  # callgrind: the part before ends here
        for _ in range(REQUESTS):
            call()
        os.getppid()  # and the requests' part here


if __name__ == "__main__":
    main(sys.argv[1])
