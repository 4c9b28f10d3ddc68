"""Runs that SIGKILL themselves at a commit point (palkit.atomic's crash points) and the leftovers to look for."""
import os
import signal
import subprocess
import sys

from palkit.atomic import CRASH_ENV
from helpers.paths import REPO_ROOT


def killed_run(script, args, crash_at):
    env = dict(os.environ, OMP_NUM_THREADS="1", **{CRASH_ENV: crash_at})
    result = subprocess.run([sys.executable, str(REPO_ROOT / script), *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


def strays(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith("."))
