"""A server started as a user starts it: a subprocess on a free port of 127.0.0.1 (codes/bench_serve.py's
ServerProcess: `url`, `log` (its stderr lines, read as they come), `stop()`)."""
import os
import time

from helpers.paths import REPO_ROOT, load_script


def start_server(*argv):
    """`python ARGV` (one torch thread) until it prints its "ready" line."""
    server_process = load_script("codes/bench_serve.py").ServerProcess
    return server_process(list(argv), env=dict(os.environ, OMP_NUM_THREADS="1"), start_timeout=300)


def serve_script(*args):
    """codes/serve.py's argv with `args`, on a free port."""
    return [str(REPO_ROOT / "codes" / "serve.py"), *args, "--port", "0", "--device", "cpu"]


def log_since(server, start, count, timeout=30):
    """The server's log lines from index `start` on, once there are `count` of them (bounded wait)."""
    deadline = time.monotonic() + timeout
    while len(server.log) < start + count and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.log[start:]
