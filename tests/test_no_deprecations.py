"""No deprecation warnings, checked as a user would: `python -W error::FutureWarning` on a tiny PAL training
step and a cached generation raises nothing (pytest.ini makes deprecations errors inside the suite too; this runs a
plain interpreter, so warnings raised once per process, at import, count as well, and so do the deprecations that
transformers only logs)."""
import subprocess
import sys

from helpers.paths import REPO_ROOT
from helpers.pal_models import write_dialogues

TRAIN_STEP_AND_GENERATE = """
import sys
import torch
from pal.config import load_config
from pal.generation import generate
from pal.inputter import Featurizer, settings_for, validation_batches
from pal.model import build_model

model_dir, dialogues = sys.argv[1:]
torch.manual_seed(0)
toker, model = build_model("strat", pretrained_model_path=model_dir)
settings = settings_for(load_config("strat"), "strat", 64, 16)
batch = next(validation_batches(Featurizer(toker, settings).file_features(dialogues, "training"), 64,
                                toker.pad_token_id, True))
model.train()
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
model(**batch).loss.backward()
optimizer.step()
model.eval()
with torch.no_grad():
    out = generate(model, batch, toker, use_cache=True, num_beams=1, max_length=6)
print(len(out["sequences"]), "replies")
"""


def test_training_step_and_cached_generation_raise_no_deprecation(tiny_blender_dir, tmp_path):
    out = subprocess.run([sys.executable, "-W", "error::FutureWarning", "-W", "error::DeprecationWarning", "-c",
                          TRAIN_STEP_AND_GENERATE, tiny_blender_dir, write_dialogues(tmp_path / "d.txt")],
                         cwd=REPO_ROOT / "codes", capture_output=True, text=True, timeout=600,
                         env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("replies"), out.stdout
    # transformers also announces some deprecations through its logger, which -W cannot turn into errors
    assert "deprecated" not in out.stderr.lower(), out.stderr[-3000:]
