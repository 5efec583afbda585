"""`python -m app.healthcheck URL`: exit 0 if URL answers HTTP 200, else 1.

The image's HEALTHCHECK and the ECS container health check run this (slim images have
no curl). Exit codes follow Docker's: 0 healthy, 1 unhealthy (2 is reserved, so usage
errors exit 1 too). The reason for a failure goes to stderr, which Docker keeps.
"""

import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 3.0  # below the 5 s default timeout of an ECS container health check
USAGE = "usage: python -m app.healthcheck http://HOST:PORT/PATH"

# No proxies: HTTP_PROXY in a task's environment must not reroute a localhost check.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def check(url: str) -> str | None:
    """None if `url` answers 200, else why not."""
    if urlsplit(url).scheme not in ("http", "https"):
        return f"not an http(s) URL: {url!r}"
    try:
        with _opener.open(url, timeout=TIMEOUT_SECONDS) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{url}: {error}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(USAGE, file=sys.stderr)
        return 1
    problem = check(argv[0])
    if problem is not None:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
