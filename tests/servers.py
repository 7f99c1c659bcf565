"""Serve the app from a subprocess with a given environment, for tests that need a real server."""

import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(8500, 8600)  # this suite's own port range


def free_port() -> int:
    for port in PORTS:
        with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                return port
    raise RuntimeError("no free port in 8500-8599")


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    """DEBUG off, fresh keys, plain HTTP (tests do not terminate TLS)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DEBUG")}
    env.update(
        DATABASE_URL=database_url,
        DEBUG="off",
        SECRET_KEY=secrets.token_urlsafe(50),
        JWT_SIGNING_KEY=secrets.token_urlsafe(50),
        USER_TOKEN_HASH_KEY=secrets.token_urlsafe(50),
        SECURE_SSL_REDIRECT="off",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    env.pop("TEST_DATABASE_NAME", None)
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str, input: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        input=input,
        timeout=300,
    )
    assert done.returncode == 0, f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


class AppServer:
    """gunicorn serving config.wsgi on 127.0.0.1:<port>; `request()` speaks to it by host."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None):
        self.env, self.port, self.log_path = env, port or free_port(), log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> "AppServer":
        self.log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                "1",
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_path.read_text()}")
            try:
                self.request("GET", "/v1/", host="localhost")
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def request(self, method, path, *, host, body=None, headers=None):
        """(status, headers (an http.client.HTTPMessage), raw body) of one request."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            payload = json.dumps(body).encode() if isinstance(body, dict) else body
            all_headers = {"Host": host, **(headers or {})}
            if isinstance(body, dict):
                all_headers["Content-Type"] = "application/json"
            connection.request(method, path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()
