"""What every system returns, and the checks on the OpenAI-style messages every system takes."""
from dataclasses import dataclass, field

from pal.cli import UserError
from pal.config import STRATEGIES

ROLES = ("system", "user", "assistant")


@dataclass
class Reply:
    text: str
    strategy: str | None = None  # one of the 8 ESConv strategies, when the system names one
    persona: str | None = None  # the persona PAL saw (None for systems without one)
    usage: dict = field(default_factory=dict)  # prompt_tokens / completion_tokens where known


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
