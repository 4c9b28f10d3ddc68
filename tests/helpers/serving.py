"""A server started as a user starts it (a subprocess on a free port of 127.0.0.1), read line by line: its "ready"
line gives the URL, its stderr (the access log) is kept in `log` (read continuously, so the pipe never fills)."""
import os
import subprocess
import sys
import threading
import time

import pytest

from helpers.paths import REPO_ROOT


class Server:
    def __init__(self, argv, ready_timeout=300):
        self.proc = subprocess.Popen([sys.executable, *argv], env=dict(os.environ, OMP_NUM_THREADS="1"),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO_ROOT))
        self.log, ready = [], []
        threading.Thread(target=self._read, args=(self.proc.stderr, self.log), daemon=True).start()
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=ready_timeout)  # bounded wait for the "ready" line
        if not ready or not ready[0].startswith("ready: "):
            self.stop()
            pytest.fail(f"server did not start: {ready} {''.join(self.log[-20:])}")
        self.url = ready[0].split()[1]

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.append(line)

    def log_since(self, start, count, timeout=30):
        """The log lines from index `start` on, once there are `count` of them (bounded wait)."""
        deadline = time.monotonic() + timeout
        while len(self.log) < start + count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.log[start:]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=60)


def serve_script(*args):
    """codes/serve.py's argv with `args`, on a free port."""
    return [str(REPO_ROOT / "codes" / "serve.py"), *args, "--port", "0", "--device", "cpu"]
