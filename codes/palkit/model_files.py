"""Model folders: a local folder is checked before a loader reads it (complete tokenizer files, a weights file that
is whole), and a state_dict is compared with a model in one line (hub names: palkit.hub). Every problem is a
palkit.cli.UserError naming the folder or file."""
import os
import zipfile

from .cli import UserError
from .loaders import check_safetensors, expect_type, load_json
from .paths import require_file, then_hint

# Tokenizer files that make a local folder loadable, as alternatives (any one set is enough).
# BlenderBot-small's tokenizer reads only vocab.json + merges.txt; BART's reads either set (without any, transformers 5
# silently builds a 5-token tokenizer); SimCSE's BERT tokenizer reads vocab.txt or tokenizer.json.
VOCAB_AND_MERGES = (("vocab.json", "merges.txt"),)
BPE_TOKENIZER_FILES = (("tokenizer.json",),) + VOCAB_AND_MERGES
ENCODER_TOKENIZER_FILES = BPE_TOKENIZER_FILES + (("vocab.txt",),)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def is_local(path):
    """A path that names a folder on disk (else transformers treats it as a hub name)."""
    return os.path.isdir(path)


def check_tokenizer_dir(path, alternatives=BPE_TOKENIZER_FILES, hint=""):
    """A local tokenizer folder has one complete set of tokenizer files, and its JSON files parse.

    Hub names pass unchecked (transformers resolves them). Without this check transformers 5 raises a TypeError on
    a folder without vocab.json, or silently builds another tokenizer from what is there.
    """
    if not is_local(path):
        return path
    complete = [files for files in alternatives if all(os.path.isfile(os.path.join(path, f)) for f in files)]
    if not complete:
        sets = " or ".join(" + ".join(files) for files in alternatives)
        raise UserError(f"{path}: incomplete tokenizer folder (needs {sets}){then_hint(hint)}")
    # AutoTokenizer reads config.json too (to pick the tokenizer class).
    for name in ("tokenizer.json", "vocab.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        if os.path.isfile(os.path.join(path, name)):
            load_json(os.path.join(path, name), expect=dict, hint=hint)
    return path


def check_model_dir(path, hint=""):
    """A local save_pretrained folder: config.json (a JSON object) and a weights file that is complete."""
    if not is_local(path):
        return path
    load_json(os.path.join(path, "config.json"), expect=dict, hint=hint)
    present = [name for name in WEIGHT_FILES if os.path.isfile(os.path.join(path, name))]
    if not present:
        raise UserError(f"{path}: no weights file (one of {', '.join(WEIGHT_FILES)}){then_hint(hint)}")
    for name in present:
        check_weights_file(os.path.join(path, name), hint)
    return path


def check_weights_file(path, hint=""):
    """model.safetensors: complete; pytorch_model.bin: a zip archive whose directory reads; an index: every shard
    it names is there and complete."""
    if path.endswith(".safetensors"):
        return check_safetensors(path, hint)
    if path.endswith(".index.json"):
        index = load_json(path, expect=dict, hint=hint)
        shards = sorted(set(expect_type(index.get("weight_map"), dict, f"{path}: weight_map", hint).values()))
        for shard in shards:
            check_weights_file(require_file(os.path.join(os.path.dirname(path), shard), hint), hint)
        return path
    with open(path, "rb") as f:
        if f.read(1) == b"\x80":
            return path  # torch's legacy (pre-1.6) format, a bare pickle: only loading it can tell
    try:
        with zipfile.ZipFile(path):
            pass  # opening reads the central directory at the end: a truncated file fails here
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path}: truncated or not a torch.save archive ({e}){then_hint(hint)}")
    return path


def state_dict_mismatches(model, state, show=6):
    """'' when keys and shapes match; else one line listing missing, unexpected and shape-mismatched keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                    for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" and {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{label} {len(items)}: {', '.join(items[:show])}{more}")
    return "; ".join(parts)
