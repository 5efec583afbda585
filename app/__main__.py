"""`python -m app`: serve the app on 0.0.0.0:$PORT with granian.

SIGTERM (or SIGINT): granian stops accepting, closes idle keep-alive connections, lets
requests in flight finish, and exits 0; a worker still busy after
`contract.SHUTDOWN_TIMEOUT_SECONDS` is killed so the task stops before ECS's SIGKILL.
"""

import os
import socket
import sys
from functools import partial

from granian import Granian
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels

from app import contract, logs
from app.settings import SettingsError, load_settings

LISTEN_ADDRESS = "0.0.0.0"  # all interfaces: the ALB reaches the task on its own IP


def _check_can_listen(port: int) -> None:
    """Fail with a plain message (granian's is a Rust backtrace) if the port is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((LISTEN_ADDRESS, port))


def main() -> int:
    try:
        settings = load_settings(os.environ)
    except SettingsError as error:
        print(f"app: {error}", file=sys.stderr)
        return 2
    try:
        _check_can_listen(settings.port)
    except OSError as error:
        print(f"app: cannot listen on {LISTEN_ADDRESS}:{settings.port}: {error}", file=sys.stderr)
        return 1
    server = Granian(
        "app.server:create_app",
        factory=True,
        address=LISTEN_ADDRESS,
        port=settings.port,
        interface=Interfaces.RSGI,
        # One worker process: a Fargate task gets 1 vCPU or less, and ECS scales by tasks.
        workers=1,
        http=HTTPModes.http1,  # the ALB speaks HTTP/1.1 to its targets
        websockets=False,
        # hyper's header-read timeout is also how long an idle keep-alive connection lives.
        http1_settings=HTTP1Settings(
            header_read_timeout=contract.KEEP_ALIVE_TIMEOUT_SECONDS * 1000
        ),
        workers_kill_timeout=contract.SHUTDOWN_TIMEOUT_SECONDS,
        log_level=LogLevels.warning,
        log_dictconfig=logs.GRANIAN_LOG_CONFIG,
    )
    server.on_shutdown(partial(logs.write_event, "stopped", version=settings.version))
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
