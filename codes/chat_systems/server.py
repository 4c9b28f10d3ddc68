"""A loaded system served as an OpenAI-compatible chat endpoint (PAL's RUN/serve.sh; any system works).

    POST /v1/chat/completions  {"messages": [...], "temperature", "top_p", "max_tokens", "seed"}  (all but messages
                               optional; absent: the system's released decoding defaults)
    GET  /v1/models

The answer is OpenAI's chat.completion object; the reply is choices[0].message.content and the strategy and the
persona PAL used are in the extra field "pal". Bad input gets an OpenAI-style JSON error with a 4xx status, never
a traceback. Model calls are serialised by the system's own lock, so concurrent requests are safe.
"""
import time
import uuid

from palkit.cli import UserError
from palkit.serving import listening_port, serve_wsgi

from chat_systems.endpoint import EXTRA_FIELD, SERVER_OWNER
from chat_systems.reply import check_messages

MAX_BODY_BYTES = 1 << 20
MAX_TOKENS_LIMIT = 512
UNSUPPORTED = {"stream": "streaming is not supported; send stream=false", "tools": "tools are not supported"}


class BadRequest(Exception):
    def __init__(self, status, message, param=None, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def number(body, key, low, high, integer=False):
    """body[key] checked to lie in [low, high] (None when absent)."""
    value = body.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise BadRequest(400, f"{key} must be {kind} in [{low}, {high}], got {value!r}", key)
    return value


def decoding_of(body):
    top_p = number(body, "top_p", 0, 1)
    if top_p == 0:
        raise BadRequest(400, "top_p must be above 0", "top_p")
    return {"temperature": number(body, "temperature", 0, 2), "top_p": top_p,
            "max_tokens": number(body, "max_tokens", 1, MAX_TOKENS_LIMIT, integer=True),
            "seed": number(body, "seed", 0, 2**63 - 1, integer=True)}


def completion(system, body):
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object with a messages list")
    if body.get("model") not in (None, system.name):
        raise BadRequest(404, f"model {body['model']!r} is not served here; GET /v1/models lists {system.name!r}",
                         "model", "model_not_found")
    for key, message in UNSUPPORTED.items():
        if body.get(key):
            raise BadRequest(400, message, key)
    if body.get("n", 1) != 1:
        raise BadRequest(400, "only n=1 is supported", "n")
    try:
        messages = check_messages(body.get("messages"))
        reply = system.reply(messages, **decoding_of(body))
    except UserError as e:
        raise BadRequest(400, str(e), "messages")
    usage = {k: reply.usage[k] for k in ("prompt_tokens", "completion_tokens") if k in reply.usage}
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": system.name, "usage": usage,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                         "finish_reason": "stop"}],
            EXTRA_FIELD: {"strategy": reply.strategy, "persona": reply.persona}}


def create_app(system, max_body_bytes=MAX_BODY_BYTES):
    from flask import Flask, jsonify, request
    from werkzeug.exceptions import HTTPException
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    def error(status, message, param=None, kind="invalid_request_error"):
        response = jsonify({"error": {"message": message, "type": kind, "param": param, "code": None}})
        response.status_code = status
        return response

    @app.errorhandler(BadRequest)
    def bad_request(e):
        return error(e.status, e.message, e.param, e.kind)

    @app.errorhandler(HTTPException)
    def http_error(e):  # unknown route, wrong method, oversized body
        return error(e.code, f"{e.name}: {e.description}")

    @app.errorhandler(Exception)
    def server_error(e):  # a fault of ours, never of the request: no traceback goes out
        app.logger.exception("request failed")
        return error(500, "internal server error (see the server's log)", kind="server_error")

    @app.get("/v1/models")
    def models():
        return jsonify({"object": "list", "data": [{"id": system.name, "object": "model", "created": 0,
                                                   "owned_by": SERVER_OWNER, "kind": system.kind}]})

    @app.post("/v1/chat/completions")
    def chat_completions():
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise BadRequest(413, f"the body is over {max_body_bytes} bytes")
        body = request.get_json(force=True, silent=True)
        if body is None:
            raise BadRequest(400, "the body is not JSON; send a JSON object with a messages list")
        return jsonify(completion(system, body))

    return app


def serve(app, host, port, threads=8, max_body_bytes=MAX_BODY_BYTES, on_ready=None):
    """Serve `app` until interrupted; on_ready(base_url) once listening. waitress buffers a body before the app
    sees it: one over 4 x max_body_bytes is cut off there (a plain-text 413), a smaller oversized one gets the
    app's JSON 413."""
    serve_wsgi(app, host, port, threads=threads, max_request_body_size=4 * max_body_bytes,
               on_ready=on_ready and (lambda server: on_ready(f"http://{host}:{listening_port(server)}/v1")))
