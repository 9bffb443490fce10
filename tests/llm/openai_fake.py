"""A stand-in OpenAI-compatible server on 127.0.0.1, in a thread: it serves one model, answers every completion
with the same text (and the request's seed), and records every request it receives (so a test can see what
reached it, with which Authorization header). `reply(path, status, body)` makes it answer a path otherwise."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "fake-model"
TEXT = "A story."
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


class FakeOpenAIServer:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []  # {"method", "path", "authorization"} per request, in order
        self.replies: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.root: str | None = None  # the folder /v1/models says the model is served from (vLLM says one)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer({})

            def do_POST(self) -> None:
                self._answer(json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}"))

            def _answer(self, request: dict[str, Any]) -> None:
                server.received.append(
                    {"method": self.command, "path": self.path, "authorization": self.headers.get("Authorization")}
                )
                status, body, headers = server.replies.get(self.path) or (200, server.answer(self.path, request), {})
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "FakeOpenAIServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.shutdown()
        self.http.server_close()

    def reply(self, path: str, status: int, body: bytes | str | dict, headers: dict[str, str] | None = None) -> None:
        """Answer `path` (e.g. /v1/completions) with `status` and `body`; an error is not retried."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else body.encode() if isinstance(body, str) else body
        self.replies[path] = (status, raw, {"x-should-retry": "false", **(headers or {})})

    def answer(self, path: str, request: dict[str, Any]) -> bytes:
        if path == "/v1/models":
            model = {"id": MODEL, "object": "model", "owned_by": "me", **({"root": self.root} if self.root else {})}
            return json.dumps({"object": "list", "data": [model]}).encode()
        text = TEXT if request.get("seed") is None else f"{TEXT} Seed {request['seed']}."
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if path == "/v1/chat/completions":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        body = {"id": "x", "object": "completion", "created": 0, "model": MODEL, "choices": [choice], "usage": USAGE}
        return json.dumps(body).encode()
