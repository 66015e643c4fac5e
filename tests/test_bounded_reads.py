"""Every read of a job's logs or metrics has one deadline, and gives back its connection and its thread when the
deadline passes, whatever the Hub sends: streams of keep-alives only, or events without end (the stand-in's
misbehaving streams). Counted: the app's read threads, and this process's connections to the Hub."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from trainer_space.hub.session import HubSession, JobRequest
from trainer_space.hub.streams import READ_THREAD_PREFIX


def read_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(READ_THREAD_PREFIX)]


def hub_sockets(port: int) -> int:
    """This process's TCP connections to the Hub stand-in (client side, established)."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            ours.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if remote_port == port and cols[3] == "01" and cols[9] in ours:
                count += 1
    return count


def settled(measure, expected: int, timeout: float = 3.0) -> int:
    """`measure()` once it is at most `expected`, or its value after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = measure()
    while value > expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = measure()
    return value


def misbehaving_job(hub, session: HubSession, mode: str):
    hub.plan_next_job(schedule_s=0.0, lines=["hello"] * 5, line_interval_s=60.0, logs_stream=mode, metrics_stream=mode)
    return session.submit_job(JobRequest(image="python:3.12", command=["true"], flavor="t4-small"))


def test_fifty_abandoned_reads_leave_no_thread_and_no_connection(hub):
    port = int(hub.url.rsplit(":", 1)[1].strip("/"))
    session = HubSession(hub.alice)
    jobs = {mode: misbehaving_job(hub, session, mode) for mode in ("keep-alive", "endless")}
    session.job_logs(jobs["keep-alive"].id, tail=5, deadline_s=0.3)  # warm: whoami cached, a pooled connection
    threads_before, sockets_before = len(read_threads()), hub_sockets(port)

    def read(i: int) -> float:
        job = jobs["keep-alive" if i % 2 else "endless"]
        started = time.monotonic()
        if i % 4 < 2:
            session.job_logs(job.id, tail=5, deadline_s=0.4)
        else:
            session.job_metrics(job.id, max_samples=10**6 if i % 2 else 30, max_seconds=0.4)
        return time.monotonic() - started

    with ThreadPoolExecutor(10) as pool:
        futures = [pool.submit(read, i) for i in range(50)]
        time.sleep(0.2)
        during = hub_sockets(port), len(read_threads())
        took = [f.result(timeout=20) for f in futures]
    assert during[0] >= 5 and during[1] >= 5, during  # the counts see the reads in flight
    assert max(took) < 2.5, took  # each read ends by its deadline (plus one connection)
    assert settled(lambda: len(read_threads()), threads_before) == threads_before, read_threads()
    assert settled(lambda: hub_sockets(port), sockets_before) <= sockets_before


@pytest.mark.parametrize("mode", ["keep-alive", "endless"])
def test_a_log_read_that_never_ends_by_itself_returns_by_its_deadline(hub, mode):
    session = HubSession(hub.alice)
    job = misbehaving_job(hub, session, mode)
    started = time.monotonic()
    lines = session.job_logs(job.id, tail=5, deadline_s=0.5)
    assert time.monotonic() - started < 2.0
    assert (lines == []) if mode == "keep-alive" else (lines and lines[0] == "line 0")
