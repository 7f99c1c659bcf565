"""A background thread that keeps an activated machine alive with heartbeats.

    beats = Heartbeats(client, key, fingerprint, on_refused=show_licence_dialog).start()
    ...
    beats.stop()  # at exit (then, optionally, client.deactivate(key, fingerprint))

It beats at half the plan's interval (read from each answer), so one lost beat is survived. When
a beat fails to reach the server (network down, 5xx, 429) it retries with exponential backoff,
capped at `max_backoff` and never waiting past the next deadline for long. When the server
refuses the machine (the licence was suspended, the machine deactivated or dead, its slot taken),
it calls `on_refused` with the MachineResult or ConflictError and stops.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from licensing_client.errors import ApiError, ConflictError, LicensingError

logger = logging.getLogger("licensing_client")

DEFAULT_INTERVAL = 600.0  # when the plan asks for no heartbeat: a check-in every ten minutes


class Heartbeats:
    def __init__(
        self,
        client,
        key: str,
        fingerprint: str,
        *,
        on_refused: Callable[[object], None] | None = None,
        on_error: Callable[[Exception, float], None] | None = None,
        min_backoff: float = 1.0,
        max_backoff: float = 300.0,
    ):
        self.client, self.key, self.fingerprint = client, key, fingerprint
        self.on_refused, self.on_error = on_refused, on_error
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.last = None  # the last MachineResult
        self.refused = None  # what stopped it, if the server refused the machine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeats:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="licensing-heartbeats")
            self._thread.daemon = True  # never keeps the application from exiting
            self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop beating (at once, even mid-wait) and wait for the thread to end."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Heartbeats:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                result = self.client.heartbeat(self.key, self.fingerprint)
            except ConflictError as refused:
                self._refuse(refused)
                return
            except ApiError as error:
                if error.status < 500 and error.status != 429:  # 400, 404: retrying cannot help
                    self._refuse(error)
                    return
                failures += 1
                self._wait_after(error, failures)
                continue
            except LicensingError as error:  # the server could not be reached
                failures += 1
                self._wait_after(error, failures)
                continue
            if not result.active:
                self._refuse(result)
                return
            failures = 0
            self.last = result
            self._stop.wait(self._next_beat(result))

    def _next_beat(self, result) -> float:
        interval = (result.machine.get("heartbeat") or {}).get("interval_seconds")
        return max(float(interval or DEFAULT_INTERVAL) / 2, 0.5)

    def backoff(self, failures: int) -> float:
        """The wait after `failures` failed beats in a row: doubling, capped, with jitter."""
        ceiling = min(self.max_backoff, self.min_backoff * 2 ** (failures - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not for security

    def _wait_after(self, error: Exception, failures: int) -> None:
        wait = self.backoff(failures)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            wait = max(wait, min(float(retry_after), self.max_backoff))
        logger.warning("Heartbeat failed (%s); retrying in %.1fs", type(error).__name__, wait)
        if self.on_error is not None:
            self.on_error(error, wait)
        self._stop.wait(wait)

    def _refuse(self, refusal) -> None:
        self.refused = refusal
        logger.warning("Heartbeat refused: %s", getattr(refusal, "code", refusal))
        if self.on_refused is not None:
            self.on_refused(refusal)
