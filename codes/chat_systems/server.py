"""A loaded system served as an OpenAI-compatible chat endpoint (PAL's RUN/serve.sh; any system works).

    POST /v1/chat/completions   OpenAI's chat completions: every field is honoured or refused with a 400 naming it
                                (README "PAL as a service" has the table); stream=true sends Server-Sent Events
    GET  /v1/models, GET /v1/models/{id}

The answer is OpenAI's chat.completion object (or its chunks); the strategy and the persona PAL used are in the
extra field "pal". Bad input gets an OpenAI-style JSON error with a 4xx status, never a traceback.
Requests are decoded by one worker (`Batcher`): requests that arrive together (within batch_wait_ms of the first)
and may share a batch (the same decoding settings, and the system's `batch_key`) are decoded as one batch of up to
max_batch, each reply exactly what the request gets alone. Every request is one access-log line (method, path,
status, milliseconds, tokens), never its content.
"""
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

from palkit.cli import UserError
from palkit.serving import listening_port, serve_wsgi

from chat_systems.endpoint import EXTRA_FIELD, SERVER_OWNER
from chat_systems.reply import MAX_TOP_LOGPROBS, check_messages
from chat_systems.system import require

MAX_BODY_BYTES = 1 << 20
MAX_TOKENS_LIMIT = 512
MAX_JSON_DEPTH = 32  # a chat request nests about 6 deep
MAX_STOP = 4  # OpenAI's limit on stop strings
MAX_BATCH, BATCH_WAIT_MS = 16, 10
ACCESS_LOG = logging.getLogger("chat_systems.access")
LOG = logging.getLogger("chat_systems.server")


class BadRequest(Exception):
    def __init__(self, status, message, param=None, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


# ---- the request, field by field ------------------------------------------------------------------------------------
@dataclass
class ChatRequest:
    messages: list = None
    model: str | None = None
    temperature: float | None = None  # None: the system's default (PAL: the released interaction settings)
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    stop: list = field(default_factory=list)
    logprobs: int | None = None  # None: not asked; K: each token's log-probability and its top K alternatives
    stream: bool = False
    include_usage: bool = False
    system_messages: int = 0  # how many the request had (PAL ignores them: the answer says so)

    def decoding(self):
        """What a batch shares."""
        return self.temperature, self.top_p, self.max_tokens


def number(key, value, low, high, integer=False, low_open=False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not low <= value <= high or (low_open and value == low):
        kind = "an integer" if integer else "a number"
        interval = f"({low}, {high}]" if low_open else f"[{low}, {high}]"
        raise BadRequest(400, f"{key} must be {kind} in {interval}, got {value!r}", key)
    return value


def boolean(key, value):
    if not isinstance(value, bool):
        raise BadRequest(400, f"{key} must be true or false, got {value!r}", key)
    return value


def string(key, value):
    if not isinstance(value, str):
        raise BadRequest(400, f"{key} must be a string, got {type(value).__name__}", key)
    return value


def set_max_tokens(request, key, value, body):
    value = number(key, value, 1, MAX_TOKENS_LIMIT, integer=True)
    other = {"max_tokens": "max_completion_tokens", "max_completion_tokens": "max_tokens"}[key]
    if body.get(other) is not None and body[other] != value:
        raise BadRequest(400, f"max_tokens and max_completion_tokens differ ({body['max_tokens']!r} and "
                              f"{body['max_completion_tokens']!r}); give one", key)
    request.max_tokens = value


def set_stop(request, key, value, body):
    stops = [value] if isinstance(value, str) else value
    if (not isinstance(stops, list) or not 1 <= len(stops) <= MAX_STOP
            or not all(isinstance(s, str) and s for s in stops)):
        raise BadRequest(400, f"stop must be a non-empty string or a list of 1 to {MAX_STOP} of them, got {value!r}",
                         key)
    request.stop = stops


def set_logprobs(request, key, value, body):
    if boolean(key, value):
        request.logprobs = request.logprobs or 0


def set_top_logprobs(request, key, value, body):
    number(key, value, 0, MAX_TOP_LOGPROBS, integer=True)
    if body.get("logprobs") is not True:
        raise BadRequest(400, "top_logprobs needs logprobs=true", key)
    request.logprobs = value


def set_stream_options(request, key, value, body):
    if body.get("stream") is not True:
        raise BadRequest(400, "stream_options is only allowed with stream=true", key)
    if not isinstance(value, dict):
        raise BadRequest(400, f"stream_options must be an object, got {type(value).__name__}", key)
    for option, setting in value.items():
        if option == "include_usage":
            request.include_usage = boolean(f"{key}.include_usage", setting)
        elif option != "include_obfuscation":  # obfuscation pads chunks against side channels; ours are not padded
            raise BadRequest(400, f"stream_options.{option} is not supported (known: include_usage, "
                                  f"include_obfuscation)", key)
        else:
            boolean(f"{key}.include_obfuscation", setting)


def setter(attribute, check):
    def set_field(request, key, value, body):
        setattr(request, attribute, check(key, value))
    return set_field


def only(allowed, why):
    """A field accepted only with a value that changes nothing; any other is refused naming it."""
    def check(request, key, value, body):
        if not any(value == a and isinstance(value, bool) == isinstance(a, bool) for a in allowed):
            raise BadRequest(400, f"{key}={json.dumps(value)[:60]} is not supported: {why}", key)
    return check


def no_effect(check):
    """A field that identifies the caller or hints at caching: checked, then not used (never logged)."""
    def set_field(request, key, value, body):
        check(key, value)
    return set_field


def metadata(key, value):
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(400, f"{key} must be an object of strings", key)


NOT_TOOLS = "this server has no tools or function calling"
FIELDS = {  # README "PAL as a service" has the same table in words
    "messages": None,  # parse_messages
    "model": setter("model", string),
    "temperature": setter("temperature", lambda k, v: number(k, v, 0, 2)),
    "top_p": setter("top_p", lambda k, v: number(k, v, 0, 1, low_open=True)),
    "max_tokens": set_max_tokens,
    "max_completion_tokens": set_max_tokens,
    "seed": setter("seed", lambda k, v: number(k, v, 0, 2**63 - 1, integer=True)),
    "stop": set_stop,
    "logprobs": set_logprobs,
    "top_logprobs": set_top_logprobs,
    "stream": setter("stream", boolean),
    "stream_options": set_stream_options,
    "n": only((1,), "one choice per request; send n requests (each with its own seed)"),
    "frequency_penalty": only((0,), "the system decodes with its own settings (PAL: the released repetition "
                                    "penalty 1.03)"),
    "presence_penalty": only((0,), "the system decodes with its own settings"),
    "logit_bias": only(({},), "the system decodes with its own settings"),
    "response_format": only(({"type": "text"},), "replies are plain text"),
    "modalities": only((["text"],), "replies are text only"),
    "tools": only(([],), NOT_TOOLS),
    "tool_choice": only(("none",), NOT_TOOLS),
    "parallel_tool_calls": only((), NOT_TOOLS),
    "functions": only(([],), NOT_TOOLS),
    "function_call": only(("none",), NOT_TOOLS),
    "audio": only((), "replies are text only"),
    "prediction": only((), "predicted outputs are not supported"),
    "web_search_options": only((), "this server does not search the web"),
    "reasoning_effort": only((), "the systems served here do not reason before replying"),
    "verbosity": only((), "the systems served here have no verbosity setting"),
    "store": only((False,), "completions are not stored"),
    "service_tier": only(("auto", "default"), "one service tier"),
    "user": no_effect(string),
    "safety_identifier": no_effect(string),
    "prompt_cache_key": no_effect(string),
    "metadata": no_effect(metadata),
}
MESSAGE_FIELDS = ("role", "content", "name", "strategy")  # name: accepted, not used; strategy: PAL's ESConv label
ROLE_ALIASES = {"developer": "system"}  # OpenAI's newer name for the system role


def parse_messages(value):
    """(messages with string contents, number of system messages); a 400 naming the first bad part."""
    if not isinstance(value, list) or not value:
        raise BadRequest(400, "messages: need a non-empty list of {\"role\", \"content\"} messages", "messages")
    out = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise BadRequest(400, f"{where}: need an object with role and content", "messages")
        stray = [k for k in m if k not in MESSAGE_FIELDS]
        if stray:
            raise BadRequest(400, f"{where}: field {stray[0]!r} is not supported (message fields: "
                                  f"{', '.join(MESSAGE_FIELDS)}; {NOT_TOOLS})", "messages")
        role = ROLE_ALIASES.get(m.get("role"), m.get("role"))
        if role in ("tool", "function"):
            raise BadRequest(400, f"{where}: role {role!r} is not supported ({NOT_TOOLS})", "messages")
        if "name" in m:
            string(f"{where}.name", m["name"])
        message = {**m, "role": role, "content": content_text(m.get("content"), where)}
        message.pop("name", None)
        out.append(message)
    try:
        check_messages(out)
    except UserError as e:
        raise BadRequest(400, str(e), "messages")
    return out, sum(m["role"] == "system" for m in out)


def content_text(content, where):
    """A message's content: a string, or a list of {"type": "text", "text"} parts (joined with newlines, as vLLM
    does); other part types are refused by name."""
    if isinstance(content, str) or not isinstance(content, list):
        return content  # check_messages names a content that is not a string
    texts = []
    for j, part in enumerate(content):
        part_type = part.get("type") if isinstance(part, dict) else None
        if part_type != "text":
            raise BadRequest(400, f"{where}.content[{j}]: part type {part_type!r} is not supported (text parts only)",
                             "messages")
        if set(part) - {"type", "text"} or not isinstance(part.get("text"), str):
            raise BadRequest(400, f"{where}.content[{j}]: a text part is {{\"type\": \"text\", \"text\": a string}}",
                             "messages")
        texts.append(part["text"])
    return "\n".join(texts)


def parse_body(raw):
    """The JSON object of a request body; a 400 for what is not one (not JSON, not UTF-8, nested too deep)."""
    try:
        body = json.loads(raw)
    except RecursionError:
        body = None
    except ValueError:
        raise BadRequest(400, "the body is not JSON; send a JSON object with a messages list")
    if body is None or depth_over(body, MAX_JSON_DEPTH):
        raise BadRequest(400, f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object with a messages list")
    return body


def depth_over(value, limit):
    """Whether a parsed JSON value nests deeper than `limit` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def parse_request(body, system):
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise BadRequest(400, f"unknown field {unknown[0]!r} (the fields this server honours or refuses: README "
                              f"\"PAL as a service\")", unknown[0])
    request = ChatRequest()
    if "messages" not in body:
        raise BadRequest(400, "messages: missing", "messages")
    request.messages, request.system_messages = parse_messages(body["messages"])
    for key, value in body.items():
        if key != "messages" and value is not None:
            FIELDS[key](request, key, value, body)
    if request.model not in (None, system.name):
        raise BadRequest(404, f"model {request.model!r} is not served here; GET /v1/models lists {system.name!r}",
                         "model", "model_not_found")
    if request.logprobs is not None:
        try:
            require(system, "token_logprobs", "logprobs")
        except UserError as e:
            raise BadRequest(400, str(e), "logprobs")
    return request


# ---- the answer -----------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    """A reply as the request sees it: cut at its first stop string, tokens counted to there."""
    text: str
    finish_reason: str
    completion_tokens: int | None
    prompt_tokens: int | None
    logprobs: list | None
    extra: dict

    @classmethod
    def of(cls, reply, request, system):
        text, finish, tokens, logprobs = reply.text, reply.finish_reason, reply.usage.get("completion_tokens"), \
            reply.logprobs
        cut = stop_position(text, request.stop)
        if cut is not None:
            text, finish = text[:cut[0]], "stop"
            if reply.token_ends is not None:  # the tokens up to the one that completed the stop string
                tokens = next(k + 1 for k, end in enumerate(reply.token_ends) if end >= cut[1])
                logprobs = logprobs and logprobs[:tokens]
        if request.logprobs is None:  # (another request of its batch asked for them)
            logprobs = None
        elif logprobs is not None:
            logprobs = [{**e, "top_logprobs": e["top_logprobs"][:request.logprobs]} for e in logprobs]
        extra = {"strategy": reply.strategy, "persona": reply.persona}
        if request.system_messages and not system.capabilities.has("system_messages"):
            extra["system_messages"] = "ignored"
        return cls(text, finish, tokens, reply.usage.get("prompt_tokens"), logprobs, extra)

    def usage(self):
        known = {k: v for k, v in (("prompt_tokens", self.prompt_tokens), ("completion_tokens",
                                                                           self.completion_tokens)) if v is not None}
        if len(known) == 2:
            known["total_tokens"] = self.prompt_tokens + self.completion_tokens
        return known


def stop_position(text, stops):
    """(where the first stop string starts, where it ends) in text, or None."""
    found = [(text.find(s), text.find(s) + len(s)) for s in stops if s in text]
    return min(found) if found else None


def completion_object(request_id, created, system, answer):
    return {"id": request_id, "object": "chat.completion", "created": created, "model": system.name,
            "system_fingerprint": None, "usage": answer.usage(),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text, "refusal": None},
                         "logprobs": None if answer.logprobs is None else {"content": answer.logprobs,
                                                                            "refusal": None},
                         "finish_reason": answer.finish_reason}],
            EXTRA_FIELD: answer.extra}


# ---- batching -------------------------------------------------------------------------------------------------------
@dataclass(eq=False)  # jobs are compared by identity
class Job:
    request: ChatRequest
    key: tuple
    arrived: float = field(default_factory=time.monotonic)
    events: queue.Queue | None = None  # streaming: ("text", final text so far) while decoding, then ("done", None)
    done: threading.Event = field(default_factory=threading.Event)
    reply: object = None
    error: BaseException | None = None


class Batcher:
    """One worker thread decodes the submitted jobs: the oldest job waits at most `wait_s` for others with its key,
    then up to `max_batch` of them are decoded as one `reply_batch` call (each with its own seed)."""

    def __init__(self, system, max_batch=MAX_BATCH, wait_s=BATCH_WAIT_MS / 1000):
        self.system, self.max_batch, self.wait_s = system, max_batch, wait_s
        self.pending, self.ready = [], threading.Condition()
        threading.Thread(target=self.work, name="batcher", daemon=True).start()

    def key(self, request):
        group = getattr(self.system, "batch_key", None)  # a system without one decodes any rows together exactly
        return request.decoding() + ((group(request.messages) if group else None),)

    def submit(self, request, stream=False):
        try:
            job = Job(request, self.key(request), events=queue.Queue() if stream else None)
        except UserError as e:
            raise BadRequest(400, str(e), "messages")
        with self.ready:
            self.pending.append(job)
            self.ready.notify()
        return job

    def next_batch(self):
        with self.ready:
            while not self.pending:
                self.ready.wait()
            first = self.pending[0]
            while True:
                same = [j for j in self.pending if j.key == first.key][:self.max_batch]
                left = first.arrived + self.wait_s - time.monotonic()
                if len(same) >= self.max_batch or left <= 0:
                    break
                self.ready.wait(left)
            self.pending = [j for j in self.pending if j not in same]
            return same

    def work(self):
        while True:
            self.decode(self.next_batch())

    def decode(self, jobs):
        try:
            try:
                replies = self.reply_batch(jobs)
            except UserError:
                if len(jobs) == 1:
                    raise
                replies = None  # one request's fault: each alone, so the others still get their replies
            if replies is None:
                for job in jobs:
                    self.decode([job])
                return
            for job, reply in zip(jobs, replies):
                job.reply = reply
        except UserError as e:
            for job in jobs:
                job.error = BadRequest(400, str(e), "messages")
        except Exception as e:  # a fault of ours: logged, and a 500 for its requests; the worker goes on
            LOG.exception("decoding a batch of %d failed", len(jobs))
            for job in jobs:
                job.error = e
        for job in jobs:
            if job.events is not None:
                job.events.put(("done", None))
            job.done.set()

    def reply_batch(self, jobs):
        requests = [j.request for j in jobs]
        asked = [r.logprobs for r in requests if r.logprobs is not None]
        streams = [j.events for j in jobs]
        more = {}
        if asked:
            more["logprobs"] = max(asked)
        if any(r.stop for r in requests):
            more["text_by_token"] = True
        if any(s is not None for s in streams):
            more["on_token"] = lambda row, final: streams[row] is not None and streams[row].put(("text", final))
        first = requests[0]
        return self.system.reply_batch([r.messages for r in requests], seed=[r.seed for r in requests],
                                       temperature=first.temperature, top_p=first.top_p, max_tokens=first.max_tokens,
                                       **more)


def wait_for(job):
    job.done.wait()
    if job.error is not None:
        raise job.error
    return job.reply


# ---- streaming ------------------------------------------------------------------------------------------------------
def sse(payload):
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def stream_events(job, request, system, request_id, created, tally):
    """The chat.completion.chunk events of a streamed request: text as it becomes final (held back where a stop
    string may begin), then the rest of the answer, the finish reason, usage if asked, and [DONE]."""
    def chunk(delta, finish_reason=None, logprobs=None, **extra):
        return sse({"id": request_id, "object": "chat.completion.chunk", "created": created, "model": system.name,
                    "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                                 "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None}}],
                    **({"usage": None} if request.include_usage else {}), **extra})

    yield chunk({"role": "assistant", "content": ""})
    sent, hold = "", max((len(s) for s in request.stop), default=1) - 1
    while True:
        event, final = job.events.get()
        if event == "done":
            break
        cut = stop_position(final, request.stop)
        visible = final[:cut[0]] if cut else final[:max(len(sent), len(final) - hold)]
        if len(visible) > len(sent):
            yield chunk({"content": visible[len(sent):]})
            sent = visible
    try:
        answer = Answer.of(wait_for(job), request, system)
    except BadRequest as e:
        yield sse({"error": {"message": e.message, "type": e.kind, "param": e.param, "code": None}})
        yield "data: [DONE]\n\n"
        return
    except Exception:
        yield sse({"error": {"message": "internal server error (see the server's log)", "type": "server_error",
                             "param": None, "code": None}})
        yield "data: [DONE]\n\n"
        return
    tally.update(answer.usage())
    if len(answer.text) > len(sent) or answer.logprobs:  # the rest, and every token's log-probability
        yield chunk({"content": answer.text[len(sent):]}, logprobs=answer.logprobs)
    yield chunk({}, finish_reason=answer.finish_reason, **{EXTRA_FIELD: answer.extra})
    if request.include_usage:
        yield sse({"id": request_id, "object": "chat.completion.chunk", "created": created, "model": system.name,
                   "system_fingerprint": None, "choices": [], "usage": answer.usage()})
    yield "data: [DONE]\n\n"


# ---- the app --------------------------------------------------------------------------------------------------------
class AccessLog:
    """WSGI middleware: one line per request when its answer is finished (streams included): method, path (no
    query string), status, milliseconds, tokens (prompt+completion, where the app counted them)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        started, status = time.perf_counter(), []
        environ["pal.tokens"] = tally = {}

        def start(line, headers, exc_info=None):
            status.append(line.split(" ", 1)[0])
            return start_response(line, headers, exc_info)

        body = self.app(environ, start)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()
            tokens = (f"{tally.get('prompt_tokens', '-')}+{tally.get('completion_tokens', '-')}" if tally else "-")
            ACCESS_LOG.info("%s %s %s %.0f ms tokens=%s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                            status[0] if status else "-", 1000 * (time.perf_counter() - started), tokens)


def model_object(system):
    return {"id": system.name, "object": "model", "created": 0, "owned_by": SERVER_OWNER, "kind": system.kind}


def create_app(system, max_body_bytes=MAX_BODY_BYTES, max_batch=MAX_BATCH, batch_wait_ms=BATCH_WAIT_MS):
    from flask import Flask, Response, jsonify, request  # lazy: only a server needs it
    from werkzeug.exceptions import HTTPException
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = max_body_bytes
    batcher = Batcher(system, max_batch, batch_wait_ms / 1000)

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
        LOG.exception("request failed")
        return error(500, "internal server error (see the server's log)", kind="server_error")

    @app.get("/v1/models")
    def models():
        return jsonify({"object": "list", "data": [model_object(system)]})

    @app.get("/v1/models/<path:model_id>")
    def model(model_id):
        if model_id != system.name:
            raise BadRequest(404, f"model {model_id!r} is not served here; GET /v1/models lists {system.name!r}",
                             "model", "model_not_found")
        return jsonify(model_object(system))

    @app.post("/v1/chat/completions")
    def chat_completions():
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise BadRequest(413, f"the body is over {max_body_bytes} bytes")
        chat = parse_request(parse_body(request.get_data(cache=False)), system)
        job = batcher.submit(chat, stream=chat.stream)
        request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        tally = request.environ["pal.tokens"]
        if chat.stream:
            return Response(stream_events(job, chat, system, request_id, created, tally),
                            mimetype="text/event-stream", headers={"Cache-Control": "no-cache",
                                                                   "X-Accel-Buffering": "no"})
        answer = Answer.of(wait_for(job), chat, system)
        tally.update(answer.usage())
        return jsonify(completion_object(request_id, created, system, answer))

    app.wsgi_app = AccessLog(app.wsgi_app)
    return app


def serve(app, host, port, threads=64, max_body_bytes=MAX_BODY_BYTES, on_ready=None):
    """Serve `app` until interrupted; on_ready(base_url) once listening. waitress buffers a body before the app
    sees it: one over 4 x max_body_bytes is cut off there (a plain-text 413), a smaller oversized one gets the
    app's JSON 413. `threads` bounds the requests inside the app at once: keep it above max_batch."""
    serve_wsgi(app, host, port, threads=threads, max_request_body_size=4 * max_body_bytes,
               on_ready=on_ready and (lambda server: on_ready(f"http://{host}:{listening_port(server)}/v1")))
