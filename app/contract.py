"""What the image, the task definition and the load balancer agree on about the app.

The Dockerfile's HEALTHCHECK and the ECS container health check both run
`HEALTH_CHECK_COMMAND`; tests compare the Dockerfile against this module.
"""

from typing import Final

PORT: Final = 8000
HEALTH_PATH: Final = "/health"
HEALTH_URL: Final = f"http://localhost:{PORT}{HEALTH_PATH}"
# Slim Python images have no curl: the check uses the image's own Python.
HEALTH_CHECK_COMMAND: Final = f"python -m app.healthcheck {HEALTH_URL}"

# Environment variables the task definition sets; both are optional.
HEALTH_MESSAGE_ENV: Final = "APP_HEALTH_MESSAGE"  # text of GET /health, shows which version answers
VERSION_ENV: Final = "APP_VERSION"  # written into every request log line
# The ALB closes idle connections after 60 s by default; a target that closes them first
# makes the ALB answer 502 (AWS's advice: target idle timeout > ALB idle timeout).
KEEP_ALIVE_TIMEOUT_SECONDS: Final = 65
# The container's root filesystem is read-only (ECS readonlyRootFilesystem); this directory is
# the one writable path, an ephemeral task-storage volume, and TMPDIR points at it.
WRITABLE_DIR: Final = "/tmp"
# ECS sends SIGKILL `stopTimeout` (30 s by default) after SIGTERM; the app stops draining
# requests in flight sooner than that.
SHUTDOWN_TIMEOUT_SECONDS: Final = 20
