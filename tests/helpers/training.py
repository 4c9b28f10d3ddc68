"""The tiny PAL training data (train/valid files and their prepared features) and train.py's arguments."""
import json

import torch

from helpers.paths import load_script

SHORT = ["--max_input_length", "48", "--max_decoder_input_length", "12"]
STRATEGIES = ["Question", "Reflection of feelings", "Providing Suggestions", "Affirmation and Reassurance"]


def dialogue(n, seed):
    words = ["i", "feel", "sad", "job", "friend", "help", "you", "can", "so", "what", "how", "sorry", "hear", "that"]
    pick = lambda k, m: " ".join(words[(seed * 7 + k * 3 + j) % len(words)] for j in range(m)) + "."
    dialog = []
    for k in range(n):
        dialog.append({"text": pick(k, 4 + k % 3), "speaker": "usr"})
        dialog.append({"text": pick(k + 1, 3 + (k + seed) % 4), "speaker": "sys",
                       "strategy": STRATEGIES[(k + seed) % len(STRATEGIES)]})
    seeker = max(0, n - 2)
    return {"dialog": dialog, "persona_list": [f"<persona> i am number {seed} {j} . <input>" for j in range(seeker)],
            "persona": "<persona> all <input>"}


def train_args(data, model_dir, out, *extra):
    return ["--config_name", "strat", "--inputter_name", "strat", "--eval_input_file", str(data / "valid.txt"),
            "--pretrained_model_path", model_dir, "--prepared_dir", str(data / "prepared"), "--output_dir", str(out),
            "--pbar", "False", *SHORT, *extra]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def make_train_data(root, tiny_blender_dir):
    """train/valid files and strat.strat features prepared from them, under root."""
    for name, seeds, turns in (("train.txt", range(8), 4), ("valid.txt", range(100, 103), 3)):
        (root / name).write_text("".join(json.dumps(dialogue(turns, s)) + "\n" for s in seeds), encoding="utf-8")
    prepared = root / "prepared"
    load_script("codes/prepare.py").main(
        ["--config_name", "strat", "--inputter_name", "strat", "--train_input_file", str(root / "train.txt"),
         "--pretrained_model_path", tiny_blender_dir, "--output_dir", str(prepared), "--pbar", "False", *SHORT])
    return root
