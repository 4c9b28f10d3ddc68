"""An OpenAI-compatible chat endpoint as a system (vLLM, llama.cpp's server, a hosted API, PAL's RUN/serve.sh).

One POST /chat/completions per conversation, no retries: an unreachable endpoint fails within CONNECT_TIMEOUT_S.
The API key is read from the environment variable the spec names (api_key_env) and sent as a bearer token only;
it is never written anywhere. A strategy/persona that PAL's server adds to its answer ("pal" field) is kept.
"""
import os
import threading

from palkit.cli import UserError

from chat_systems.reply import Reply, check_messages, per_conversation

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 600  # a large model on a busy server may take minutes for one reply
EXTRA_FIELD = "pal"  # PAL's server: {"strategy", "persona"} beside the OpenAI fields
SERVER_OWNER = "pal-reproduction"  # owned_by of the models PAL's server lists


class EndpointSystem:
    """chat_systems.system.System of an OpenAI-compatible chat endpoint."""

    def __init__(self, spec):
        import requests  # lazy: only an endpoint needs it
        self.spec, self.name, self.kind, self.lock = spec, spec.name, spec.kind, threading.Lock()
        self.capabilities = spec.capabilities
        self.url = spec.endpoint.rstrip("/") + "/chat/completions"
        self.session = requests.Session()
        self._serves_pal = None
        if spec.api_key_env is not None:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise UserError(f"system {spec.name}: key 'api_key_env': the environment variable "
                                f"{spec.api_key_env} is not set (export it; the key never goes into a spec)")
            self.session.headers["Authorization"] = f"Bearer {key}"

    def identity(self):
        return self.spec.identity()

    def serves_pal(self):
        """Whether the endpoint is PAL's server (GET /models, asked once): only then do assistant messages keep
        their "strategy" (other servers may refuse unknown message fields)."""
        import requests  # lazy: only an endpoint needs it
        with self.lock:
            if self._serves_pal is None:
                try:
                    listed = self.session.get(self.spec.endpoint.rstrip("/") + "/models",
                                              timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)).json()["data"]
                except requests.ConnectionError as e:
                    raise UserError(f"system {self.name}: cannot reach {self.spec.endpoint} ({type(e).__name__}); "
                                    f"is the server running?")
                except (requests.RequestException, ValueError, KeyError, TypeError):
                    listed = []
                self._serves_pal = any(isinstance(m, dict) and m.get("owned_by") == SERVER_OWNER for m in listed)
            return self._serves_pal

    def request_body(self, messages, seed, temperature, top_p, max_tokens):
        check_messages(messages)
        keep = ("role", "content", "strategy") if self.serves_pal() else ("role", "content")
        body = {"model": self.spec.model, "messages": [{k: m[k] for k in keep if k in m} for m in messages]}
        for key, value in (("seed", seed), ("temperature", temperature), ("top_p", top_p),
                           ("max_tokens", max_tokens)):
            if value is not None:
                body[key] = value
        return body

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None, logprobs=None, **more):
        """The endpoint's reply; logprobs=K asks it for each token's log-probability and its top K alternatives
        (more: other options of the protocol, which an endpoint does not take)."""
        import requests  # lazy: only an endpoint needs it
        body = self.request_body(messages, seed, temperature, top_p, max_tokens)
        if logprobs is not None:
            body.update(logprobs=True, top_logprobs=logprobs)
        try:
            response = self.session.post(self.url, json=body, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S))
        except requests.ConnectionError as e:
            raise UserError(f"system {self.name}: cannot reach {self.url} ({type(e).__name__}); is the server "
                            f"running?")
        except requests.Timeout:
            raise UserError(f"system {self.name}: {self.url} did not answer within {READ_TIMEOUT_S} s")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict):
            detail = (answer or {}).get("error", {}).get("message") if isinstance(answer, dict) else None
            raise UserError(f"system {self.name}: {self.url} answered HTTP {response.status_code}"
                            + (f": {detail}" if detail else " (not an OpenAI-style JSON answer)"))
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"system {self.name}: {self.url} answered without choices[0].message.content")
        extra = answer.get(EXTRA_FIELD) or {}
        tokens = (choice.get("logprobs") or {}).get("content")
        if logprobs is not None and not isinstance(tokens, list):
            raise UserError(f"system {self.name}: {self.url} gave no logprobs (choices[0].logprobs.content)")
        return Reply(text=(text or "").strip(), strategy=extra.get("strategy"), persona=extra.get("persona"),
                     usage=answer.get("usage") or {}, logprobs=tokens if logprobs is not None else None,
                     finish_reason="length" if choice.get("finish_reason") == "length" else "stop")

    def reply_batch(self, conversations, *, seed=None, **options):
        """One request per conversation, in turn (`seed`: one for all or one per conversation)."""
        return [self.reply(m, seed=s, **options) for m, s in zip(conversations, per_conversation(seed,
                                                                                               len(conversations)))]

    # ---- next-token probabilities (an LLM judge's verdict, auto_eval.judge) ------------------------------------------
    def next_token_logprobs(self, conversations, candidates, *, single_token=True):
        """[{candidate: log-probability}] per conversation, as LocalLLM.next_token_logprobs reads them in process:
        one request each with max_tokens=1, temperature=0, logprobs=true, top_logprobs=TOP_LOGPROBS, read from
        choices[0].logprobs.content[0].top_logprobs. A candidate is the returned token with its exact text (else with
        the text stripped of spaces, the most likely such); one not among them is left out (less likely than all
        returned). The endpoint gives whole tokens only (single_token is accepted for the same call signature). A
        server that returns no logprobs is a one-line UserError."""
        return [self._top_logprobs(messages, candidates) for messages in conversations]

    def _top_logprobs(self, messages, candidates):
        try:
            tokens = self.reply(messages, temperature=0, max_tokens=1, logprobs=TOP_LOGPROBS).logprobs
            found = [(entry["token"], float(entry["logprob"])) for entry in tokens[0]["top_logprobs"]]
        except UserError as e:
            if "gave no logprobs" not in str(e):
                raise
            found = None
        except (KeyError, IndexError, TypeError, ValueError):
            found = None
        if found is None:
            raise UserError(f"system {self.name}: {self.url} answered without logprobs "
                            f"(choices[0].logprobs.content[0].top_logprobs); next-token probabilities need a server "
                            f"that returns them (vLLM, RUN/serve.sh with an llm= system), or use text verdicts")
        out = {}
        for candidate in candidates:
            exact = [lp for token, lp in found if token == candidate]
            near = exact or [lp for token, lp in found if token.strip() == candidate]
            if near:
                out[candidate] = max(near)
        return out


TOP_LOGPROBS = 20  # the most OpenAI's chat API returns
