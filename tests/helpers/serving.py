"""codes/serve.py started as a user starts it, on a free port of 127.0.0.1, for tests that talk to it over HTTP."""
import os
import subprocess
import sys
import threading

import pytest

from helpers.paths import REPO_ROOT


def served_pal(checkpoint, model_dir):
    """Generator (for a fixture): serve `checkpoint` (config strat, tokenizer folder `model_dir`); yields the base
    URL, stops the server after."""
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "codes" / "serve.py"), checkpoint, "--config",
                             "strat", "--pretrained_model_path", model_dir, "--port", "0", "--device", "cpu"],
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=300)  # bounded wait for the "ready" line
    if not lines or not lines[0].startswith("ready: "):
        proc.kill()
        pytest.fail(f"server did not start: {lines} {proc.stderr.read() if proc.poll() is not None else ''}")
    yield lines[0].split()[1]
    proc.terminate()
    proc.wait(timeout=60)
