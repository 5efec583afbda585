"""`python -m automation`: the automation service on uvicorn, configured by AUTOMATION_* vars."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError as SettingsSourceError

from automation.settings import Settings, SettingsError, describe_errors
from automation.state_lock import StateDirBusy, StateDirLock


def main() -> int:
    try:
        settings = Settings()
        settings.check_exposure()
    except ValidationError as error:
        print(f"automation: invalid settings:\n{describe_errors(error)}", file=sys.stderr)
        return 2
    except (SettingsError, SettingsSourceError) as error:
        print(f"automation: {error}", file=sys.stderr)
        return 2
    state_lock = StateDirLock(settings.state_dir)
    try:
        state_lock.acquire()
    except StateDirBusy as error:
        print(f"automation: {error}", file=sys.stderr)
        return 2
    # Imported once the state dir is ours: a second service refused above exits in a fraction
    # of the time these imports take (FastAPI, the Pulumi SDK).
    from automation.api import create_app
    from automation.child_env import PassphraseError, seal_service_environment
    from automation.engine import EngineError
    from automation.server import Limits, serve

    try:
        seal_service_environment(settings.state_dir)
    except (PassphraseError, OSError) as error:
        print(f"automation: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request's full URL at INFO: a webhook's or probed URL may carry a key.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    app = create_app(settings, state_lock)
    draining: asyncio.Event = app.state.draining

    def start_draining() -> None:  # runs in the signal handler, on the loop's thread
        asyncio.get_running_loop().call_soon_threadsafe(draining.set)

    try:
        started = serve(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            limits=Limits(settings.max_connections, settings.header_timeout_seconds),
            keep_alive_seconds=settings.keep_alive_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            on_exit=start_draining,
        )
    except EngineError as error:
        print(f"automation: {error}", file=sys.stderr)
        return 1
    return 0 if started else 1


if __name__ == "__main__":
    sys.exit(main())
