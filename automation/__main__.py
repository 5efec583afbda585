"""`python -m automation`: the automation service on uvicorn, configured by AUTOMATION_* vars."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic import ValidationError
from pydantic_settings import SettingsError as SettingsSourceError

from automation.api import create_app
from automation.engine import EngineError
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
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        uvicorn.run(
            create_app(settings, state_lock),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
        )
    except EngineError as error:
        print(f"automation: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
