"""The API's description: each route's status codes, the bearer scheme, and /docs served
from the service itself (Swagger UI's files come from the swagger-ui-bundle package: no CDN).

Routes list the codes they answer with `problems(...)`; the codes the HTTP edge answers
(`automation.http_guard`) are added to every operation here, so the document lists every code
a route returns, and only those.
"""

from __future__ import annotations

from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from automation.models import Problem

DOCS_ASSETS = "/docs/assets"
REASONS = {
    400: "Malformed request (Content-Length)",
    401: "Missing, malformed or unknown token",
    403: "The token lacks a scope, or (without tokens) another origin's request",
    404: "Unknown environment or job",
    408: "The request body did not arrive in time",
    409: "Contradicts a job or the environment: job already finished, nothing to roll back to",
    413: "The request body is over AUTOMATION_MAX_BODY_BYTES",
    415: "The request body is not application/json",
    421: "Without tokens: a Host that is not this service's (DNS rebinding)",
    422: "Invalid request: the message says which part and why",
    429: "The environment's queue is full (see Retry-After)",
    503: "Not ready (engine, passphrase, start-up) or shutting down",
}
EVERY_ROUTE = (421,)
ROUTES_WITH_A_BODY = (400, 401, 403, 408, 413, 415, 503)
"""What the edge answers to a request with a body, before the route runs."""


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each code with the Problem body and its usual reason."""
    return {code: {"model": Problem, "description": REASONS[code]} for code in codes}


def install(app: FastAPI) -> None:
    """Call on an app made with `docs_url=None, redoc_url=None`."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), "docs")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_edge_codes(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _with_edge_codes(schema: dict[str, Any]) -> dict[str, Any]:
    """Adds the edge's codes; drops the 422 FastAPI adds to every route with parameters
    (a route that can answer 422 lists it, with the Problem body it really sends)."""
    reference = {"$ref": "#/components/schemas/Problem"}
    problem = {"content": {"application/json": {"schema": reference}}}
    for path_item in schema.get("paths", {}).values():
        for method, operation in path_item.items():
            responses = operation.setdefault("responses", {})
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            codes = EVERY_ROUTE + (ROUTES_WITH_A_BODY if method == "post" else ())
            for code in codes:
                responses.setdefault(str(code), {"description": REASONS[code]})
            for code, response in responses.items():
                if int(code) >= 400:  # JSON whatever the route's own media type
                    response.update(problem)
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
