"""What every system is (PAL, a local chat LLM, an endpoint, a test system): the `System` protocol, its
`Capabilities`, and `require`, the one way a command asks for a capability (docs/architecture.md, "Add a chat
backend")."""
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from palkit.cli import UserError

from chat_systems.reply import Reply

SYSTEM_MESSAGES = ("used", "ignored")
# what a system without the capability cannot do, in the words of an error line
LACKS = {"token_logprobs": "gives no token log-probabilities",
         "next_token_logprobs": "cannot read the next token's probabilities after a prompt",
         "strategies": "names no ESConv strategy",
         "persona": "sees no persona",
         "reference_nll": "gives no likelihood of a reference reply",
         "system_messages": "ignores system messages"}


@dataclass(frozen=True)
class Capabilities:
    token_logprobs: bool = False  # log-probabilities of its reply's tokens (the served `logprobs`)
    # next_token_logprobs(conversations, candidates, *, single_token, **options) -> [{candidate: logprob}]: the
    # next token's log-probabilities after a chat prompt, no generation (an LLM judge's probability verdicts)
    next_token_logprobs: bool = False
    strategies: bool = False  # names one of the 8 ESConv strategies with each reply
    persona: bool = False  # its reply depends on the seeker's persona
    reference_nll: bool = False  # the likelihood of a given reply (infer_chat.py's perplexity)
    system_messages: str = "used"  # "used" | "ignored" (PAL reads only the seeker's and supporter's turns)
    notes: dict = field(default_factory=dict, compare=False)  # capability -> where to go instead (error lines)

    def __post_init__(self):
        if self.system_messages not in SYSTEM_MESSAGES:
            raise ValueError(f"system_messages must be one of {SYSTEM_MESSAGES}, got {self.system_messages!r}")

    def has(self, capability):
        if capability not in LACKS:
            raise ValueError(f"unknown capability {capability!r}; known: {', '.join(LACKS)}")
        value = getattr(self, capability)
        return value == "used" if capability == "system_messages" else bool(value)


@runtime_checkable
class System(Protocol):
    """A loaded system. `messages` are OpenAI-style {"role", "content"} dicts (user = help-seeker, assistant =
    supporter, which may carry its ESConv "strategy"). `reply_batch` gives, for each conversation, what `reply`
    gives for it alone; `seed` may be one seed per conversation there. `more` are the optional request fields a
    system supports (`logprobs`, `text_by_token`, `on_token`: chat_systems.reply.TokenRecord); a system ignores those
    it does not know. With the capability of that name: `next_token_logprobs(...)` (Capabilities). Optional:
    `batch_key(messages)`, when only conversations with equal keys may share a batch
    (chat_systems.server.Batcher)."""

    name: str
    kind: str  # the backend's name (chat_systems.backends)
    capabilities: Capabilities

    def identity(self) -> dict: ...

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None, **more) -> Reply: ...

    def reply_batch(self, conversations, *, seed=None, temperature=None, top_p=None, max_tokens=None,
                    **more) -> list[Reply]: ...


def require(system, capability, why, fix=None):
    """A one-line UserError when `system` (loaded, or a parsed spec: its backend's capabilities) lacks
    `capability`; `why` says what needed it, `fix` (optional) what to do instead."""
    capabilities = system.capabilities
    if not capabilities.has(capability):
        note = capabilities.notes.get(capability)
        raise UserError(f"{why}: system {system.name} ({system.kind}) {LACKS[capability]}"
                        + (f"; {note}" if note else "") + (f"; {fix}" if fix else ""))
