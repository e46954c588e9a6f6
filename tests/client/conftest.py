"""A scripted HTTP API on a free loopback port: it answers the queued responses in order and
records each request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class FakeApi:
    url: str = ""
    answers: list[tuple[int, Any, dict[str, str]]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, body, headers or {}))

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": request.get_data(),
            }
        )
        status, body, headers = self.answers.pop(0) if self.answers else (500, {}, {})
        response = Response(json.dumps(body), status=status, headers=headers)
        response.content_type = "application/json"
        return response(environ, start_response)


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi()
    server = make_server("127.0.0.1", 0, api, threaded=True)
    api.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


def job_body(status: str, attempts: int = 0, **extra: Any) -> dict[str, Any]:
    terminal = status in ("succeeded", "failed")
    return {
        "job_id": "01KAAAAAAAAAAAAAAAAAAAAAAA",
        "type": "echo",
        "status": status,
        "attempts": attempts,
        "max_attempts": 3,
        "created_at": "2026-11-24T12:00:00.000Z",
        "started_at": None,
        "completed_at": None,
        "next_attempt_at": None,
        "is_terminal": terminal,
        "dead_lettered": False,
        "replays": 0,
        **extra,
    }


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds
