"""A run folder of random tiny checkpoints (one per config) and infer.py's arguments."""
import os

from pal.checkpoint import save_checkpoint
from pal.model import build_model
from helpers.paths import load_script
from helpers.pal_models import randomize, write_dialogues


FAST = ["--max_length", "8", "--min_length", "3", "--infer_batch_size", "2", "--max_input_length", "64"]


def infer_args(run_dir, tiny_blender_dir, config="strat", inputter="strat", extra=()):
    return ["--config_name", config, "--inputter_name", inputter, "--pretrained_model_path", tiny_blender_dir,
            "--load_checkpoint", str(run_dir / config / "epoch-0.bin"), "--infer_input_file",
            str(run_dir / "test.txt"), *FAST, *extra]


def run_infer(argv):
    infer = load_script("codes/infer.py")
    infer.main(argv)


def make_infer_run_dir(root, tiny_blender_dir):
    """A training-run folder with epoch-0.bin of each config and a data file, under root."""
    for config in ("strat", "strat_no_persona", "vanilla"):
        _, model = build_model(config, pretrained_model_path=tiny_blender_dir)
        os.makedirs(root / config)
        save_checkpoint(randomize(model), str(root / config / "epoch-0.bin"))
    write_dialogues(root / "test.txt")
    return root
