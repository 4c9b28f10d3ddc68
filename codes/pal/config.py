"""Model configurations (codes/pal/configs/*.json), pretrained-path resolution and the tokenizer.

A config names the pretrained folder and the tokens added to BlenderBot-small's vocabulary (54,944 ids), as the
authors' configs (chengjl19/PAL codes/pal/configs) do; which variant, model and inputter a config goes with, and the
tokens each one adds, is declared in pal.variants. The strategy tokens come last in every config that has them: the
models index them as the last 8 ids.
"""
import json
import os
from pathlib import Path

from palkit.cli import UserError
from palkit.hub import did_you_mean, from_folder_or_hub
from palkit.model_files import VOCAB_AND_MERGES, check_tokenizer_dir
from .variants import available_configs, variant  # noqa: F401 (available_configs: re-exported for the chat systems)

# The 8 ESConv strategies, in id order (docs/reproduction.md#data); their tokens are the last 8 ids of the vocabulary.
STRATEGIES = [
    "Question", "Restatement or Paraphrasing", "Reflection of feelings", "Self-disclosure",
    "Affirmation and Reassurance", "Providing Suggestions", "Information", "Others",
]
STRATEGY_TOKENS = [f"[{s}]" for s in STRATEGIES]
# The released chengjl19/PAL codes/RUN/train_strat.sh: the defaults of train.py and prepare.py (RUN/train_*.sh and
# RUN/prepare_*.sh pass the same values visibly; tests/test_released_settings.py holds them equal).
RELEASED = dict(seed=13, max_input_length=512, max_decoder_input_length=50, train_batch_size=4,
                gradient_accumulation_steps=1, eval_batch_size=16, learning_rate=1.5e-5, num_epochs=10,
                warmup_steps=0, max_grad_norm=1.0, weight_decay=0.01, use_all_persona=False)
# The paper's stated values (Cheng et al. 2023, implementation details), applied by --paper_hparams True.
PAPER_HPARAMS = dict(learning_rate=2.5e-5, warmup_steps=100)
HUB_NAME = "facebook/blenderbot_small-90M"  # the pretrained model every config starts from
WEIGHTS_HINT = ("download facebook/blenderbot_small-90M (config.json, vocab.json, merges.txt, "
                "pytorch_model.bin or model.safetensors) into Blenderbot_small-90M/ at the repository root "
                "(see Blenderbot_small-90M/README.md), or pass --pretrained_model_path DIR")


def load_config(config_name):
    """Read the config file of the variant declared for `config_name` (pal.variants); an unknown name raises a
    UserError listing the available ones."""
    path = variant(config_name).config_file
    if not path.is_file():
        raise UserError(f"config {config_name!r}: no {path}")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}")
    if not isinstance(config, dict) or "pretrained_model_path" not in config:
        raise UserError(f"{path}: missing key 'pretrained_model_path'")
    expanded = config.get("expanded_vocab", [])
    if not isinstance(expanded, list) or not all(isinstance(t, str) and t for t in expanded) \
            or len(set(expanded)) != len(expanded):
        raise UserError(f"{path}: expanded_vocab must be a list of distinct non-empty token strings")
    config["config_name"] = config_name
    return config


def resolve_pretrained_path(config, override=None):
    """The directory (or hub name) to load pretrained weights and tokenizer from.

    `override` (--pretrained_model_path) wins over the config. A relative path is looked up against the current
    directory (the configs say "Blenderbot_small-90M": the RUN scripts run from the repository root, where it lives).
    A value that is neither an existing directory nor shaped like a hub name ("org/name") is an error.
    """
    value = override or config["pretrained_model_path"]
    candidates = [Path(value)] if os.path.isabs(value) else [Path.cwd() / value]
    for c in candidates:
        if c.is_dir():
            return str(c)
    looks_like_hub_name = value.count("/") == 1 and not value.startswith((".", "/")) and not value.endswith("/")
    if looks_like_hub_name:
        return value
    raise UserError(f"pretrained model directory {value!r} not found (looked in {', '.join(map(str, candidates))}): "
                    + WEIGHTS_HINT + did_you_mean(value, (HUB_NAME,)))


def build_tokenizer(config, pretrained_path):
    """BlenderBot-small's tokenizer plus the config's expanded_vocab, added as special tokens in the given order."""
    from transformers import AutoTokenizer  # lazy: seconds to import, and command lines read this module for --help
    # A folder without its tokenizer files is an error, not a fallback to some other tokenizer.
    check_tokenizer_dir(pretrained_path, VOCAB_AND_MERGES, hint=WEIGHTS_HINT)
    try:
        toker = from_folder_or_hub(lambda **kw: AutoTokenizer.from_pretrained(pretrained_path, **kw), pretrained_path,
                                   WEIGHTS_HINT, known=(HUB_NAME,))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the tokenizer from {pretrained_path!r} ({str(e).splitlines()[0]}): " + WEIGHTS_HINT)
    expanded = config.get("expanded_vocab")
    if expanded:
        toker.add_tokens(expanded, special_tokens=True)
    return toker
