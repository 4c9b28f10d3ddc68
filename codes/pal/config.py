"""Model configurations (codes/CONFIG/*.json), pretrained-path resolution and the tokenizer.

A config names the model family and the tokens added to BlenderBot-small's vocabulary, e.g.
CONFIG/strat.json: {"model_name": "strat_blenderbot_small", "pretrained_model_path": "Blenderbot_small-90M",
"expanded_vocab": ["</s>", "<s>", "<persona>", "<input>", "[Question]", ...]}.
"""
import json
import os
from pathlib import Path

from .checks import VOCAB_AND_MERGES, check_tokenizer_dir
from .cli import UserError

CODES_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = CODES_DIR.parent
CONFIG_DIR = CODES_DIR / "CONFIG"

# The 8 ESConv strategies, in id order (SPEC "Data"); their tokens are the last 8 ids of the vocabulary.
STRATEGIES = [
    "Question", "Restatement or Paraphrasing", "Reflection of feelings", "Self-disclosure",
    "Affirmation and Reassurance", "Providing Suggestions", "Information", "Others",
]
STRATEGY_TOKENS = [f"[{s}]" for s in STRATEGIES]
WEIGHTS_HINT = ("download facebook/blenderbot_small-90M (config.json, vocab.json, merges.txt, "
                "pytorch_model.bin or model.safetensors) into Blenderbot_small-90M/ at the repository root "
                "(see Blenderbot_small-90M/README.md), or pass --pretrained_model_path DIR")


def available_configs():
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_config(config_name):
    """Read codes/CONFIG/<config_name>.json; unknown names raise a UserError listing the available ones."""
    path = CONFIG_DIR / f"{config_name}.json"
    if not path.is_file():
        raise UserError(f"unknown --config_name {config_name!r}: no {path}; available: {', '.join(available_configs())}")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}")
    for key in ("model_name", "pretrained_model_path"):
        if key not in config:
            raise UserError(f"{path}: missing key {key!r}")
    config["config_name"] = config_name
    return config


def resolve_pretrained_path(config, override=None):
    """The directory (or hub name) to load pretrained weights and tokenizer from.

    `override` (--pretrained_model_path) wins over the config. A relative path is looked up against the current
    directory first, then the repository root (the configs say "Blenderbot_small-90M", which lives there).
    A value that is neither an existing directory nor shaped like a hub name ("org/name") is an error.
    """
    value = override or config["pretrained_model_path"]
    candidates = [Path(value)] if os.path.isabs(value) else [Path.cwd() / value, REPO_ROOT / value]
    for c in candidates:
        if c.is_dir():
            return str(c)
    looks_like_hub_name = value.count("/") == 1 and not value.startswith((".", "/")) and not value.endswith("/")
    if looks_like_hub_name:
        return value
    raise UserError(f"pretrained model directory {value!r} not found (looked in {', '.join(map(str, candidates))}): "
                    + WEIGHTS_HINT)


def build_tokenizer(config, pretrained_path):
    """BlenderBot-small's tokenizer plus the config's expanded_vocab, added as special tokens in the given order."""
    from transformers import AutoTokenizer
    # A folder without its tokenizer files is an error, not a fallback to some other tokenizer.
    check_tokenizer_dir(pretrained_path, VOCAB_AND_MERGES, hint=WEIGHTS_HINT)
    try:
        toker = AutoTokenizer.from_pretrained(pretrained_path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the tokenizer from {pretrained_path!r} ({str(e).splitlines()[0]}): " + WEIGHTS_HINT)
    expanded = config.get("expanded_vocab")
    if expanded:
        toker.add_tokens(expanded, special_tokens=True)
    return toker
