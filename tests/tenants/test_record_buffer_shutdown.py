"""The in-process record queue (no Redis) under threads: its writer thread, the requests that
push, and the drain at process exit (tenants.record_buffer.LocalQueue).

Each race is driven deterministically: the writer thread is held at a chosen point with events
while the other side runs.
"""

import os
import threading
import time
import uuid

from django.db import connections
from django_tenants.utils import schema_context

from licensing.models import LicenseValidation, ValidationCode
from tenants import record_buffer
from tenants.counters import ProcessThread
from tenants.record_buffer import LocalQueue, queue_entry


def in_thread(target) -> tuple[threading.Thread, list[BaseException]]:
    """`target` started in a thread that closes its database connections; what it raised."""
    raised: list[BaseException] = []

    def run():
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            raised.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


def test_the_exit_drain_waits_for_the_batch_the_writer_thread_is_writing(
    django_db_setup, django_db_blocker, monkeypatch
):
    """SIGTERM while the writer thread holds a batch it took but has not written: the exit's
    drain must wait for it (daemon threads die when the interpreter finishes exiting)."""
    queue = LocalQueue()
    request_id = str(uuid.uuid4())
    queue.push(
        "alpha",
        queue_entry(LicenseValidation, {"code": ValidationCode.VALID, "request_id": request_id}),
    )
    taken, release = threading.Event(), threading.Event()
    write = record_buffer.write_entries

    def write_when_released(schema, entries):
        taken.set()
        assert release.wait(10)
        return write(schema, entries)

    monkeypatch.setattr(record_buffer, "write_entries", write_when_released)
    with django_db_blocker.unblock():
        try:
            writer, writer_raised = in_thread(queue.drain)
            assert taken.wait(10)  # the batch is out of the queue, not yet in the database
            exiting, exit_raised = in_thread(queue._at_exit)
            exiting.join(0.5)
            waited = exiting.is_alive()
            release.set()
            writer.join(10)
            exiting.join(10)
            assert writer_raised == exit_raised == []
            assert waited, "the exit's drain returned while the writer thread's batch was unwritten"
            with schema_context("alpha"):
                assert LicenseValidation.objects.filter(request_id=request_id).count() == 1
        finally:
            with schema_context("alpha"):
                LicenseValidation.objects.filter(request_id=request_id).delete()


class HeldSchema(str):
    """A schema name whose comparison holds the drain inside its pass over the queue."""

    def __new__(cls, value, inside: threading.Event, release: threading.Event):
        held = super().__new__(cls, value)
        held.inside, held.release = inside, release
        return held

    def __eq__(self, other):
        self.inside.set()
        assert self.release.wait(10)
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_record_pushed_while_a_drain_sorts_the_queue_is_kept():
    """A request pushes while the writer thread is taking its batch: the row stays queued (not
    appended to the queue being replaced, nor breaking the writer thread's pass)."""
    queue = LocalQueue()
    inside, release = threading.Event(), threading.Event()
    queue.push(HeldSchema("beta", inside, release), "{}")  # kept: the drain is for alpha only

    drainer, drain_raised = in_thread(lambda: queue.drain("alpha"))
    assert inside.wait(10)  # the drain is going through the queue, under its lock
    pusher, push_raised = in_thread(lambda: queue.push("gamma", "{}"))
    pusher.join(0.2)
    release.set()
    drainer.join(10)
    pusher.join(10)

    assert drain_raised == push_raised == []
    assert sorted(str(schema) for schema, _ in queue._entries) == ["beta", "gamma"]


def test_a_forked_worker_starts_its_own_writer_thread():
    """ProcessThread knows its process by an id kept up to date at fork (no system call per
    request): a forked child, as a gunicorn worker, starts a thread of its own; its parent's does
    not run there."""
    started = []
    thread = ProcessThread(lambda: started.append(os.getpid()), lambda: None, "test-fork")
    thread.start()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether it started a thread of its own, then leave at once
        try:
            before = len(started)
            thread.start()
            deadline = time.monotonic() + 5
            while len(started) == before and time.monotonic() < deadline:
                time.sleep(0.01)
            os.write(write, b"1" if started[before:] == [os.getpid()] else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    thread.start()  # the parent's already runs: no second one
    time.sleep(0.05)
    assert started == [os.getpid()]
