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
