"""The labelling page (`harness-label serve`): people compare responses in a browser.

A FastAPI app over two files:
- the queue: pending comparisons, one JSON object per line, `{"id", "prompt", "responses": [k
  strings]}` (written by a run with `labeler=human`, or by hand), and, for binary labels,
  ratings of one response, `{"id", "kind": "rating", "prompt", "responses": [one string]}`;
- the labels: what people answered, appended one JSON line per answer, the shape `labeler=file`
  reads (`id`: the item's id and the annotator's name, `prompt`, `responses`, `choice`,
  `annotator`) plus `item` (the queue's id), `outcome` (`choice`, `tie`
  or `skip`; a tie or a skip has `choice: null`, and `labeler=file` passes over them),
  `seconds` (time from the page being shown to the answer), `shown` (the order the responses
  were shown in: `shown[i]` is the index of the response in position i) and `position` (where
  the chosen one was shown). A rating's answer has `outcome: rating` and `rating` (1 thumbs up,
  0 down; `labeler=file` passes over it), or `outcome: skip`.

Each annotator sees the pending items they have not answered, one at a time, the responses in
an order drawn per annotator and item (so no position is favoured across people), and their
progress (answered / items). An answer is one `write` of one line to a file opened for
appending, under a lock, then flushed to disk: a killed server loses no answer it acknowledged,
and two people answering the same item both count. The same annotator answering an item twice
(a double submit, a reload) keeps the first. Texts are escaped (Jinja2 autoescape): a response
holding HTML or script shows as text.

Access: on a loopback address anyone who can reach the page labels as `local` (or as
`?annotator=NAME`). On any other address every request needs a personal token
(`?token=…`, from the annotators file: name → token), a request without a valid one is
refused (403), and an annotator's page never shows another's answers; no route lists or changes
answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from filelock import FileLock
from jinja2 import Environment

from harness.errors import InputError

LOCAL = "local"
OUTCOMES = ("choice", "tie", "skip")  # of a comparison
RATING_OUTCOMES = ("rating", "skip")  # of a rating (one response, thumbs up or down)
PAGE = Environment(autoescape=True).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>prefharness · labelling</title>
<style>
body { font-family: sans-serif; max-width: 52rem; margin: 2rem auto; line-height: 1.5; }
.prompt, .response { white-space: pre-wrap; border: 1px solid #ccc; border-radius: 4px; padding: .6rem; }
.prompt { background: #f4f4f4; }
.response { margin: .6rem 0; }
button { margin: .2rem .4rem .2rem 0; padding: .3rem .8rem; }
#progress { color: #555; }
</style></head><body>
<p id="progress">{{ annotator }}: {{ done }} of {{ total }} labelled</p>
{% if item %}
{% set rating = item.kind == "rating" %}
<h3>{{ "Is this response good?" if rating else "Which response is better?" }}</h3>
<div class="prompt" id="prompt">{{ item.prompt }}</div>
<form method="post" action="answer">
<input type="hidden" name="id" value="{{ item.id }}">
<input type="hidden" name="shown" value="{{ shown_json }}">
<input type="hidden" name="shown_at" value="{{ shown_at }}">
{% if token %}<input type="hidden" name="token" value="{{ token }}">{% endif %}
{% if name_param %}<input type="hidden" name="annotator" value="{{ annotator }}">{% endif %}
{% for text in texts %}
<div class="response" id="response-{{ loop.index0 }}">{{ text }}</div>
{% if not rating %}<button type="submit" name="position" value="{{ loop.index0 }}" id="choose-{{ loop.index0 }}">Response {{ loop.index }} is better</button>{% endif %}
{% endfor %}
<p>{% if rating %}<button type="submit" name="rating" value="1" id="up">&#128077; Good</button>
<button type="submit" name="rating" value="0" id="down">&#128078; Not good</button>
{% else %}<button type="submit" name="outcome" value="tie" id="tie">Equally good</button>
{% endif %}<button type="submit" name="outcome" value="skip" id="skip">Skip</button></p>
</form>
{% else %}
<p id="finished">Nothing left to label. Thank you.</p>
{% endif %}
</body></html>
""")


def read_queue(path: Path) -> list[dict[str, Any]]:
    """The pending comparisons, checked: every line an object with a unique non-empty `id`, a
    non-empty `prompt` and ≥ 2 non-empty `responses` (a `kind: rating` item: exactly 1); the
    error names the file, line and field."""
    items, seen = [], set()
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: the queue of comparisons is not readable ({err})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: expected one JSON object per line, found invalid JSON ({err.msg})") from None
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected a JSON object")
        if not isinstance(item.get("id"), str) or not item["id"] or item["id"] in seen:
            raise InputError(f"{where}: id: expected a non-empty string no other line has, found {item.get('id')!r}")
        if not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
            raise InputError(f"{where}: prompt: expected a non-empty string")
        kind = item.get("kind", "comparison")
        if kind not in ("comparison", "rating"):
            raise InputError(f"{where}: kind: expected comparison or rating, found {kind!r}")
        responses = item.get("responses")
        many = kind == "comparison"
        if (not isinstance(responses, list) or (len(responses) < 2 if many else len(responses) != 1)
                or not all(isinstance(r, str) and r.strip() for r in responses)):
            raise InputError(f"{where}: responses: expected a list of " + ("≥ 2 non-empty strings" if many else
                                                                           "one non-empty string (a rating)"))
        seen.add(item["id"])
        items.append({"id": item["id"], "kind": kind, "prompt": item["prompt"], "responses": responses})
    return items


def shown_order(annotator: str, item_id: str, k: int) -> list[int]:
    """A permutation of range(k) drawn from a hash of the annotator and the item: the same on a
    reload, different across annotators."""
    keys = [hashlib.sha256(f"{annotator}\x00{item_id}\x00{i}".encode()).hexdigest() for i in range(k)]
    return sorted(range(k), key=lambda i: keys[i])


@dataclass
class Labelling:
    """The queue, the labels file and who may answer; the state every request reads."""

    queue: Path
    labels: Path
    tokens: Mapping[str, str] = field(default_factory=dict)  # token → annotator
    require_token: bool = False

    def __post_init__(self) -> None:
        self.items = read_queue(self.queue)
        if not self.items:
            raise InputError(f"{self.queue}: no comparison to label")
        self.by_id = {item["id"]: item for item in self.items}
        self.lock = FileLock(str(self.labels) + ".lock")
        self.labels.parent.mkdir(parents=True, exist_ok=True)
        self.labels.touch(exist_ok=True)

    def answers(self) -> list[dict[str, Any]]:
        out = []
        for line in self.labels.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn last line of a crash before this server: not an answer
        return out

    def answered_by(self, annotator: str) -> set[str]:
        """The items this annotator has answered (never anything about another's answers)."""
        return {a.get("item") for a in self.answers() if a.get("annotator") == annotator}

    def who(self, params: Mapping[str, str]) -> str | None:
        """The annotator a request speaks for, or None when it may not (no valid token)."""
        token = params.get("token")
        if token and token in self.tokens:
            return self.tokens[token]
        if self.require_token:
            return None
        name = (params.get("annotator") or "").strip()
        return name[:64] if name else LOCAL

    def record(self, annotator: str, form: Mapping[str, str]) -> None:
        """Append one answer (the first of this annotator's for the item; a repeat is ignored)."""
        item = self.by_id.get(form.get("id", ""))
        if item is None:
            raise InputError(f"no pending comparison {form.get('id')!r}")
        k = len(item["responses"])
        try:
            shown = [int(i) for i in json.loads(form.get("shown", "[]"))]
        except (ValueError, TypeError):
            shown = []
        if sorted(shown) != list(range(k)):
            raise InputError("shown: expected the order the responses were shown in")
        rating = item["kind"] == "rating"
        allowed = RATING_OUTCOMES if rating else OUTCOMES
        outcome = form.get("outcome") or allowed[0]
        if outcome not in allowed:
            raise InputError(f"outcome: expected one of {', '.join(allowed)}, found {outcome!r}")
        position, thumb = None, None
        if outcome == "rating":
            if form.get("rating") not in ("0", "1"):
                raise InputError(f"rating: expected 1 (good) or 0 (not good), found {form.get('rating')!r}")
            thumb = int(form["rating"])
        elif outcome == "choice":
            try:
                position = int(form.get("position", ""))
            except ValueError:
                raise InputError("position: expected the position of the chosen response") from None
            if not 0 <= position < k:
                raise InputError(f"position: expected 0..{k - 1}, found {position}")
        try:
            seconds = max(0.0, round(time.time() - float(form.get("shown_at", "")), 3))
        except ValueError:
            seconds = None
        # One line per annotator and item: `id` is both (labeler=file wants ids unique), `item` the item.
        answer = {"id": f"{item['id']}/{annotator}", "item": item["id"], "prompt": item["prompt"], "responses": item["responses"],
                  "choice": shown[position] if position is not None else None, "outcome": outcome,
                  **({"kind": "rating", "rating": thumb} if rating else {}),
                  "annotator": annotator, "seconds": seconds, "shown": shown, "position": position,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        data = (json.dumps(answer, ensure_ascii=False) + "\n").encode("utf-8")
        with self.lock:
            if item["id"] in self.answered_by(annotator):
                return
            fd = os.open(self.labels, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)


def create_app(labelling: Labelling) -> Any:
    """The FastAPI app: GET / (the next comparison), POST /answer (an answer, then the next)."""
    app = FastAPI(title="prefharness labelling", docs_url=None, redoc_url=None, openapi_url=None)

    def refused() -> PlainTextResponse:
        return PlainTextResponse("a personal link (token) is needed to label here", status_code=403)

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Any:
        params = dict(request.query_params)
        annotator = labelling.who(params)
        if annotator is None:
            return refused()
        done = labelling.answered_by(annotator)
        item = next((i for i in labelling.items if i["id"] not in done), None)
        shown = shown_order(annotator, item["id"], len(item["responses"])) if item else []
        return PAGE.render(annotator=annotator, done=len(done & set(labelling.by_id)), total=len(labelling.items),
                           item=item, texts=[item["responses"][i] for i in shown] if item else [],
                           shown_json=json.dumps(shown), shown_at=f"{time.time():.3f}", token=params.get("token"),
                           name_param="annotator" in params)

    @app.post("/answer")
    async def answer(request: Request) -> Any:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        annotator = labelling.who(form)
        if annotator is None:
            return refused()
        try:
            labelling.record(annotator, form)
        except InputError as err:
            return PlainTextResponse(str(err), status_code=400)
        keep = {k: form[k] for k in ("token", "annotator") if k in form}
        return RedirectResponse(f"./?{urlencode(keep)}" if keep else "./", status_code=303)

    return app


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def read_annotators(path: Path) -> dict[str, str]:
    """name → token from a JSON object; tokens must be distinct and ≥ 16 characters."""
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: expected a JSON object of annotator name → token ({err})") from None
    if not isinstance(names, dict) or not names:
        raise InputError(f"{path}: expected a JSON object of annotator name → token")
    tokens: dict[str, str] = {}
    for name, token in names.items():
        if not isinstance(token, str) or len(token) < 16:
            raise InputError(f"{path}: {name}: expected a token of ≥ 16 characters")
        if token in tokens:
            raise InputError(f"{path}: {name}: the same token as {tokens[token]}")
        tokens[token] = str(name)
    return tokens
