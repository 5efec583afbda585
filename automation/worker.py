"""One worker process runs one operation: `python -m automation.worker --project-dir … --stack …`.

The service starts a worker ahead of time (in its own session, so a signal reaches it, the
Pulumi CLI and the CLI's plugins together): it imports the SDK, checks the CLI and learns
whether the stack exists, then waits for one JobSpec line on stdin naming the job's private
copy of the project, and streams JSON lines (see protocol.py) to stdout. EOF on stdin before a
job means "not needed": the worker exits. Its environment carries the operation marker
(processes.OPERATION_MARKER) that every process of its operation inherits.

Signals: SIGINT is Pulumi's Ctrl-C; the CLI in the same process group cancels gracefully and
unlocks the stack, and the worker only notes it so the result says `cancelled`. SIGTERM (sent
by the kernel when the service dies) turns into that same SIGINT for the whole group. Because
the worker installs handlers, the CLI starts with default dispositions even when the service
was started with SIGINT ignored (`nohup … &`): a CLI that inherits an ignored SIGINT waits 5 s
at every run for its language host to stop.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

from pydantic import ValidationError

from automation.engine import Engine
from automation.models import JobStatus
from automation.protocol import EventMessage, JobSpec, OutputMessage, ResultMessage
from automation.pulumi_adapter import StackSession
from automation.secrets import Redactor

PR_SET_PDEATHSIG = 1


class Channel:
    """Writes protocol lines; once the service is gone, writes are dropped instead of failing
    (the operation must still run to its graceful end so the stack is left unlocked)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._broken = False

    def send(self, message: EventMessage | OutputMessage | ResultMessage) -> None:
        line = message.model_dump_json() + "\n"
        with self._lock:
            if self._broken:
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except OSError:
                self._broken = True


class Signals:
    def __init__(self) -> None:
        self.cancel_requested = False
        self.operating = False
        signal.signal(signal.SIGINT, self._on_sigint)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        self.cancel_requested = True

    def _on_sigterm(self, _signum: int, _frame: FrameType | None) -> None:
        """Never a second SIGINT: Pulumi takes a second Ctrl-C as "stop now, ungracefully"."""
        if not self.operating:
            raise SystemExit(0)
        if not self.cancel_requested:
            os.killpg(os.getpgrp(), signal.SIGINT)


class RedactingStream(io.TextIOBase):
    """stderr for everything Python writes there (warnings, tracebacks, the SDK's own notes):
    known secret values are replaced before a line leaves the worker."""

    def __init__(self, stream: TextIO, redactor: Callable[[], Redactor]) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._stream.write(self._redactor().text(text))
        self._stream.flush()
        return len(text)


def die_with_parent(parent_pid: int) -> None:
    """Linux: get SIGTERM when the service dies, so the operation is cancelled gracefully."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:
        raise SystemExit(0)


def _redirect_stdout() -> TextIO:
    """Keep fd 1 for the protocol; anything else that prints goes to stderr."""
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    return protocol


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m automation.worker")
    parser.add_argument("--project-dir", type=Path, required=True)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--backend-url")
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)

    channel = Channel(_redirect_stdout())
    signals = Signals()
    die_with_parent(args.parent_pid)
    session: StackSession | None = None
    setup_error: Exception | None = None
    sys.stderr = RedactingStream(
        sys.stderr, lambda: session.redactor if session is not None else Redactor()
    )
    try:
        engine = Engine.configure(args.state_dir, args.backend_url)
        session = StackSession(engine, args.project_dir, args.stack)
        session.warm()
    except Exception as error:  # retried when the job arrives, which reports what still fails
        setup_error = error

    line = sys.stdin.readline()
    if not line:
        return 0
    signals.operating = True
    channel.send(_run(line, session, setup_error, signals, channel))
    return 0


def _run(
    line: str,
    session: StackSession | None,
    setup_error: Exception | None,
    signals: Signals,
    channel: Channel,
) -> ResultMessage:
    try:
        spec = JobSpec.model_validate_json(line)
    except ValidationError as error:
        return ResultMessage(status=JobStatus.FAILED, error=f"bad job spec: {error}")
    if signals.cancel_requested:
        return ResultMessage(
            status=JobStatus.CANCELLED, error="cancelled before the operation started"
        )
    if session is None:  # the engine cannot even be configured
        return ResultMessage(status=JobStatus.FAILED, error=str(setup_error))
    try:
        return session.run(
            spec,
            on_event=lambda event: channel.send(EventMessage(event=event)),
            on_output=lambda text: channel.send(OutputMessage(line=text)),
            cancel_requested=lambda: signals.cancel_requested,
        )
    except Exception as error:  # a bug here must still end the job with a clear, safe error
        traceback.print_exc()
        return ResultMessage(
            status=JobStatus.FAILED,
            error=session.redactor.text(f"the worker failed: {type(error).__name__}: {error}"),
        )


if __name__ == "__main__":
    sys.exit(main())
