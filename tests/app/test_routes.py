"""The HTTP contract of the seed's Express app, checked against the real process."""

import http.client
import json
from collections.abc import Callable

from app.settings import DEFAULT_HEALTH_MESSAGE
from tests.app.running_app import RunningApp

JSON_TYPE = "application/json; charset=utf-8"


def call(app: RunningApp, method: str, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    connection.request(method, path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def body_of(app: RunningApp, method: str, path: str) -> tuple[int, str | None, bytes]:
    response, body = call(app, method, path)
    return response.status, response.getheader("content-type"), body


def test_root_says_hello(shared_app: RunningApp) -> None:
    assert body_of(shared_app, "GET", "/") == (
        200,
        JSON_TYPE,
        b'{"message":"Hello from Docker"}',
    )


def test_health_answers_the_default_message(shared_app: RunningApp) -> None:
    status, content_type, body = body_of(shared_app, "GET", "/health")
    assert (status, content_type) == (200, JSON_TYPE)
    assert body == b'{"message":"Everything is good here 03"}'
    assert json.loads(body) == {"message": DEFAULT_HEALTH_MESSAGE}


def test_head_sends_the_get_headers_without_a_body(shared_app: RunningApp) -> None:
    response, body = call(shared_app, "HEAD", "/health")
    assert response.status == 200
    assert response.getheader("content-length") == "40"
    assert body == b""


def test_unknown_path_is_a_json_404(shared_app: RunningApp) -> None:
    for method in ("GET", "POST"):
        assert body_of(shared_app, method, "/nope") == (
            404,
            JSON_TYPE,
            b'{"message":"Not Found"}',
        )


def test_wrong_method_is_a_json_405_naming_the_allowed_ones(shared_app: RunningApp) -> None:
    for method, path in (("POST", "/health"), ("DELETE", "/"), ("PUT", "/health")):
        response, body = call(shared_app, method, path)
        assert response.status == 405, (method, path)
        assert response.getheader("allow") == "GET, HEAD"
        assert response.getheader("content-type") == JSON_TYPE
        assert body == b'{"message":"Method Not Allowed"}'


def test_health_message_comes_from_the_environment(
    start_app: Callable[..., RunningApp],
) -> None:
    app = start_app(APP_HEALTH_MESSAGE="Green is answering: v2 ✓")
    status, _, body = body_of(app, "GET", "/health")
    assert status == 200
    assert json.loads(body) == {"message": "Green is answering: v2 ✓"}
    assert body_of(app, "GET", "/")[2] == b'{"message":"Hello from Docker"}'
