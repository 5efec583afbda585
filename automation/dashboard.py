"""The web dashboard: pages at `/` and `/ui/…`, their script and styles at `/ui/static/`, and
`/session` (who the caller is, what they may do; login and logout).

The pages are fixed HTML shells (no data and no secret in them): `static/dashboard.js` reads
the service's own JSON API with the caller's credentials and follows a job's events with
EventSource. EventSource cannot send an Authorization header, so logging in (`POST /session`
with `Authorization: Bearer <token>`) sets the token as an HttpOnly, SameSite=Strict cookie
that every route accepts in place of the header (`Authenticator.identify_headers`); the HTTP
edge refuses an unsafe request carrying it from another origin (`http_guard`). Everything the
pages load is served from here: no CDN, no build step.
"""

from __future__ import annotations

from pathlib import Path
from string import Template
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.staticfiles import StaticFiles

from automation.auth import SESSION_COOKIE, Authenticator, Caller, session_value

HERE = Path(__file__).parent
STATIC_PATH = "/ui/static"
SESSION_SECONDS = 12 * 3600
"""How long the browser keeps the login cookie."""
PAGES = {"overview": "Environments", "jobs": "Jobs", "job": "Job", "login": "Log in"}
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
        " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def install(
    app: FastAPI, auth: Authenticator, environments: list[str], require_approval: list[str]
) -> None:
    """Adds the dashboard's routes (left out of the OpenAPI document: they are not the API)."""
    app.mount(STATIC_PATH, StaticFiles(directory=HERE / "static"), "dashboard-static")
    pages = _render_pages()

    def page(name: str) -> HTMLResponse:
        return HTMLResponse(pages[name], headers=PAGE_HEADERS)

    @app.get("/", include_in_schema=False)
    async def overview() -> HTMLResponse:
        return page("overview")

    @app.get("/ui/login", include_in_schema=False)
    async def login() -> HTMLResponse:
        return page("login")

    @app.get("/ui/jobs", include_in_schema=False)
    async def jobs() -> HTMLResponse:
        return page("jobs")

    @app.get("/ui/jobs/{job_id}", include_in_schema=False)
    async def job(job_id: str) -> HTMLResponse:
        return page("job")

    def describe(who: Caller) -> dict[str, Any]:
        return {
            "name": who.name,
            "open_access": who.open_access,
            "scopes": sorted(who.scopes),
            "may_read": who.may_read(),
            "environments": [
                {
                    "name": name,
                    "requires_approval": name in require_approval,
                    "may_operate": who.may_operate(name),
                    "may_approve": who.may_approve(name),
                }
                for name in environments
            ],
        }

    @app.get("/session", include_in_schema=False)
    async def session(request: Request) -> JSONResponse:
        """The caller (header or cookie) and what they may do; 401 without valid credentials."""
        who = auth.identify_headers(request.headers)
        return JSONResponse(describe(who), headers={"Cache-Control": "no-store"})

    @app.post("/session", include_in_schema=False)
    async def log_in(request: Request) -> JSONResponse:
        """The token comes in the Authorization header, as for any API call: another site
        cannot send that header here without a CORS preflight this service never grants."""
        authorization = request.headers.get("authorization")
        who = auth.identify(authorization)
        response = JSONResponse(describe(who), headers={"Cache-Control": "no-store"})
        if not who.open_access and authorization is not None:
            token = authorization.partition(" ")[2].strip()
            response.set_cookie(
                SESSION_COOKIE,
                session_value(token),
                max_age=SESSION_SECONDS,
                path="/",
                secure=request.url.scheme == "https",
                httponly=True,
                samesite="strict",
            )
        return response

    @app.delete("/session", include_in_schema=False, status_code=204)
    async def log_out(request: Request) -> Response:
        response = Response(status_code=204, headers={"Cache-Control": "no-store"})
        response.delete_cookie(
            SESSION_COOKIE,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response


def _render_pages() -> dict[str, str]:
    """Each page: the layout around its template (fixed text: nothing from a request)."""
    layout = Template((HERE / "templates" / "layout.html").read_text())
    return {
        name: layout.substitute(
            title=title, page=name, main=(HERE / "templates" / f"{name}.html").read_text()
        )
        for name, title in PAGES.items()
    }
