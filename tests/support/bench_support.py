"""Shared helpers for the suites that drive the `switchboard bench` CLI as a subprocess
(tests/integration/test_bench_*.py): one case runner and the wait for a phase of the progress
line. Waits are on events (the progress line) with deadlines, never on sleeps.
"""

from __future__ import annotations

import os
import subprocess
import time

from harness import Deadline


class BenchCheckFailed(AssertionError):
    """An expectation about a bench run did not hold."""


def run_case(rep, name: str, fn):
    """Runs one case and records it: a failed check (any AssertionError) or an OS/JSON error
    is a failure with its message; anything else propagates (a bug in the suite itself)."""
    try:
        fn()
        rep.record(name, True)
    except AssertionError as e:
        rep.record(name, False, str(e))
    except (OSError, subprocess.SubprocessError, ValueError, KeyError) as e:
        rep.record(name, False, f"{type(e).__name__}: {e}")


def wait_for_phase(proc: subprocess.Popen, phase: bytes = b"running", seconds: float = 30):
    """Reads the bench's stderr (run with --progress) until the progress line shows `phase`."""
    deadline = Deadline(seconds)
    seen = b""
    os.set_blocking(proc.stderr.fileno(), False)
    while phase not in seen:
        if deadline.expired():
            raise BenchCheckFailed(f"no {phase!r} progress line; stderr {seen[-500:]!r}")
        if proc.poll() is not None:
            raise BenchCheckFailed(f"bench exited before {phase!r}; stderr {seen[-500:]!r}")
        try:
            chunk = proc.stderr.read()
        except BlockingIOError:
            chunk = None
        if chunk:
            seen += chunk
        else:
            time.sleep(0.02)  # polling a pipe with a deadline, not synchronizing on time
