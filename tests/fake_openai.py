"""A local OpenAI-compatible chat endpoint for tests of the LLM judge (no network)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

KEY = "test-key-123"
PAIR = re.compile(r"Response A:\n(.*)\n\nResponse B:\n(.*)\n\nAnswer", re.S)
ONE = re.compile(r"Response:\n(.*)\n\nAnswer Yes or No", re.S)


class Judge:
    """The server's judgement: the response with "good" in it; with both or neither, "A" (a
    judge that follows the position). Asked of one response: "Yes" when it holds "good", "No"
    otherwise, and a reply of neither when it holds "mumble". A prompt with "flaky" fails its
    first request (500); one with "down" always fails; one with "garbled" gets a 200 that is no
    chat completion."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.failed: set[str] = set()
        self.garble = False  # every reply a 200 that is no chat completion

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {KEY}":
                return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
            body = await request.json()
            text = body["messages"][-1]["content"]
            self.requests.append(text)
            if "garbled" in text or self.garble:  # a 200 that is no chat completion: a proxy's page, another API
                return JSONResponse({"error": "unexpected"})
            if "down" in text or ("flaky" in text and text not in self.failed):
                self.failed.add(text)
                return JSONResponse({"error": {"message": "overloaded"}}, status_code=500)
            one = ONE.search(text)
            if one is not None:
                answer = "Hmm" if "mumble" in one.group(1) else "Yes" if "good" in one.group(1) else "No"
            else:
                a, b = PAIR.search(text).groups()
                answer = "B" if ("good" in b and "good" not in a) else "A"
            return JSONResponse({
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": f" {answer}."},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 50, "completion_tokens": 2, "total_tokens": 52}})

        return app


@contextmanager
def serve() -> Iterator[tuple[str, Judge]]:
    """(the endpoint's base URL, its Judge) while the server runs in a thread."""
    judge = Judge()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(judge.app(), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started and time.time() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1", judge
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
