"""Authors'-style checkpoints: `epoch-N.bin` is a plain `torch.save(model.state_dict())`.

read_state_dict reads one (or a .safetensors file, or the "model" entry of a resumable training state) through
palkit.loaders, so a text file named epoch-0.bin or a truncated file is one line naming it; load_checkpoint loads it
strictly after mapping the key names other transformers versions write; save_checkpoint writes atomically.
"""
import torch

from palkit.loaders import load_safetensors, load_torch_state
from palkit.model_files import state_dict_mismatches
from palkit.cli import UserError
from palkit.atomic import atomic_write

CHECKPOINT_HINT = "give an epoch-N.bin written by codes/train.py (or the authors' codes), or its run folder"
# Tensors that 4.x state_dicts hold under several names (tied embeddings): any one of them is enough.
TIED_EMBEDDING_KEYS = ("model.shared.weight", "model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight",
                       "lm_head.weight")


def load_checkpoint(model, path, config_name="?"):
    """Load an authors'-style `epoch-N.bin` (plain state_dict) strictly; mismatches are one UserError line."""
    state = read_state_dict(path)
    state = normalize_state_dict_keys(state, model)
    problems = state_dict_mismatches(model, state)
    if problems:
        raise UserError(f"{path} does not match config {config_name!r} ({type(model).__name__}): {problems}; the "
                        "model built from that config and the pretrained folder (its config.json and vocabulary) is "
                        "not the one this checkpoint was trained as: pass the --config_name and "
                        "--pretrained_model_path of its training run (its run folder's args.json records both)")
    model.load_state_dict(state, strict=True)


def read_state_dict(path):
    """name -> tensor dict of a checkpoint file; anything else is a UserError naming the file."""
    if str(path).endswith(".safetensors"):
        state = load_safetensors(path, CHECKPOINT_HINT)
    else:
        state = load_torch_state(path, CHECKPOINT_HINT)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a resumable training checkpoint that wraps the weights
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path}: not a plain state_dict (name -> tensor); {CHECKPOINT_HINT}")
    return state


def normalize_state_dict_keys(state, model):
    """Map names that other transformers versions / wrappers write onto this model's names:
    DataParallel's `module.` prefix, TF-style `.gamma`/`.beta`, tied embedding copies that are absent,
    and a missing `final_logits_bias` (transformers lists it as optional; it is all zeros in BlenderBot-small)."""
    out = {}
    for key, value in state.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key.endswith(".gamma"):
            key = key[: -len(".gamma")] + ".weight"
        elif key.endswith(".beta"):
            key = key[: -len(".beta")] + ".bias"
        out[key] = value
    present = [k for k in TIED_EMBEDDING_KEYS if k in out]
    if present:
        for k in TIED_EMBEDDING_KEYS:
            out.setdefault(k, out[present[0]])
    if "final_logits_bias" not in out and "model.shared.weight" in out:
        out["final_logits_bias"] = torch.zeros(1, out["model.shared.weight"].shape[0])
    return out


def save_checkpoint(model, path):
    """torch.save(state_dict) atomically: the authors' epoch-N.bin format.

    The state_dict is saved as it is (loading maps it to the CPU): its four tied embedding entries share one storage
    and are written once; copying each entry to the CPU first would write four copies from a GPU.
    """
    with atomic_write(path, "wb") as f:
        torch.save(unwrap_model(model).state_dict(), f)


def unwrap_model(model):
    """The model inside a DistributedDataParallel/DataParallel wrapper."""
    return getattr(model, "module", model)
