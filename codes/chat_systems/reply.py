"""What every system returns, the checks on the OpenAI-style messages every system takes, and the token-level
record of a reply (its text as it grows, the log-probabilities of its tokens) that PAL and local LLMs keep."""
import math
import re
from dataclasses import dataclass, field

from palkit.cli import UserError
from pal.config import STRATEGIES

ROLES = ("system", "user", "assistant")
GREEDY_BELOW = 1e-5  # a temperature below this (0 included) decodes greedily: dividing by it would overflow
MAX_TOP_LOGPROBS = 20  # OpenAI's limit on top_logprobs


@dataclass
class Reply:
    text: str
    strategy: str | None = None  # one of the 8 ESConv strategies, when the system names one
    persona: str | None = None  # the persona PAL saw (None for systems without one)
    usage: dict = field(default_factory=dict)  # prompt_tokens / completion_tokens where known
    finish_reason: str = "stop"  # "stop": the system ended its reply; "length": max_tokens ended it
    # Per reply token (asked with text_by_token=True): how many characters of `text` are final once that token is
    # decoded (non-decreasing, the last one len(text)). The server cuts stop strings and streams with it.
    token_ends: list | None = None
    logprobs: list | None = None  # per reply token, OpenAI's logprobs.content entry (asked with logprobs=K)


def check_messages(messages, where="messages"):
    """OpenAI-style messages ending with a user (help-seeker) turn; a UserError naming the first bad one."""
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: need a non-empty list of {{\"role\", \"content\"}} messages")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise UserError(f"{where}[{i}]: need {{\"role\": one of {', '.join(ROLES)}, \"content\": a string}}")
        strategy = m.get("strategy")
        if strategy is not None and strategy not in STRATEGIES:
            raise UserError(f"{where}[{i}]: strategy {strategy!r} is not one of: {', '.join(STRATEGIES)}")
    if messages[-1]["role"] != "user":
        raise UserError(f"{where}: the last message must be the help-seeker's (role user), got "
                        f"{messages[-1]['role']!r}")
    return messages


def is_greedy(temperature):
    return temperature < GREEDY_BELOW


SIMILAR_LENGTH_FILL = 0.9  # a row joins a batch only when it is at least this share of the batch's longest


def similar_length_batches(indices, lengths, budget=math.inf):
    """`indices` in batches of similar length, longest first: rows x longest <= budget (a longer row alone), and no
    row under SIMILAR_LENGTH_FILL of the longest (padding is work: on a CPU a padded batch is slower than one at a
    time). The batches do not depend on the order the indices come in."""
    order = sorted(range(len(indices)), key=lambda k: (-lengths[k], indices[k]))
    batches, current, width = [], [], 0
    for k in order:
        if current and ((len(current) + 1) * width > budget or lengths[k] < SIMILAR_LENGTH_FILL * width):
            batches.append(current)
            current = []
        if not current:
            width = lengths[k]
        current.append(indices[k])
    return batches + ([current] if current else [])


def per_conversation(seed, count):
    """One seed per conversation: `seed` as given (a list of `count`), or the one seed for all."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != count:
            raise ValueError(f"{len(seed)} seeds for {count} conversations")
        return list(seed)
    return [seed] * count


class GrowingText:
    """The text of a reply as its tokens come, and how much of it is final: what a later token may still change
    (the last word: a sub-word piece, the space that the tokenizer's clean-up removes before punctuation, a
    half-decoded UTF-8 character) is held back. `decode(ids)` is the system's reply text of those ids."""

    def __init__(self, decode):
        self.decode, self.ids, self.ends, self.final = decode, [], [], ""

    def add(self, token_id):
        """The final text so far, after one more token."""
        self.ids.append(token_id)
        text = self.decode(self.ids)
        last_word = re.search(r"\s\S*$", text)
        stable = text[:last_word.start()] if last_word else ""
        if stable.startswith(self.final):
            self.final = stable
        self.ends.append(len(self.final))
        return self.final

    def token_ends(self, text):
        """Reply.token_ends for the reply's whole `text`."""
        common = len(self.final) if text.startswith(self.final) else 0  # (a decoder whose texts do not grow)
        return [min(e, common) for e in self.ends[:-1]] + [len(text)] if self.ends else []


class TokenRecord:
    """Per row of a decoded batch: its reply tokens (up to its end-of-reply token), their log-probabilities under
    the raw logits (no temperature, top-k/top-p or penalty: vLLM's default) with the top `logprobs` alternatives, and
    its growing text. `step(logits, tokens)` is called once per decoding step; `on_token(row, final_text)` reports
    each row's text as it grows."""

    def __init__(self, rows, end_ids, token_text, decode, logprobs=None, text_by_token=False, on_token=None):
        self.end_ids, self.token_text, self.k, self.on_token = set(end_ids), token_text, logprobs, on_token
        self.ids, self.done = [[] for _ in range(rows)], [False] * rows
        self.entries = [[] for _ in range(rows)] if logprobs is not None else None
        self.texts = [GrowingText(decode) for _ in range(rows)] if text_by_token or on_token else None

    def step(self, logits, tokens):
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        logprobs = torch.log_softmax(logits.float(), dim=-1) if self.entries is not None else None
        top = logprobs.topk(self.k, dim=-1) if self.k else None
        for row, token in enumerate(tokens.tolist()):
            if self.done[row]:
                continue
            if token in self.end_ids:
                self.done[row] = True
                continue
            self.ids[row].append(token)
            if logprobs is not None:
                alternatives = [] if top is None else [self.entry(t, v) for t, v in zip(top.indices[row].tolist(),
                                                                                        top.values[row].tolist())]
                self.entries[row].append({**self.entry(token, logprobs[row, token].item()),
                                          "top_logprobs": alternatives})
            if self.texts is not None:
                final = self.texts[row].add(token)
                if self.on_token is not None:
                    self.on_token(row, final)

    def entry(self, token, logprob):
        text = self.token_text(token)
        return {"token": text, "logprob": logprob if math.isfinite(logprob) else -9999.0,
                "bytes": list(text.encode("utf-8"))}

    def annotate(self, row, reply):
        """Reply fields of a row from the record: token_ends and logprobs where asked for."""
        if self.texts is not None:
            reply.token_ends = self.texts[row].token_ends(reply.text)
        if self.entries is not None:
            reply.logprobs = self.entries[row]
        return reply
