"""palkit.serving, the one waitress loop of the PAL endpoint and of the study app: 120 idle and half-open
connections leave a normal request answered within 2 s (waitress's defaults stop accepting at 100 open ones)."""
import socket
import subprocess
import sys
import threading
import time

import requests

APP = """
import sys
from palkit.serving import listening_port, serve_wsgi

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]

serve_wsgi(app, "127.0.0.1", 0, threads=2, on_ready=lambda s: print(listening_port(s), flush=True))
"""


def test_idle_and_half_open_connections_do_not_starve_a_served_app():
    proc = subprocess.Popen([sys.executable, "-c", APP], stdout=subprocess.PIPE, text=True)
    idle = []
    try:
        ready = []
        reader = threading.Thread(target=lambda: ready.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=60)
        port = int(ready[0])
        for i in range(120):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:  # half a request: headers that never end
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
            idle.append(s)
        start = time.monotonic()
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=(2, 2)).text == "ok"
        assert time.monotonic() - start < 2
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(timeout=60)


def test_the_study_app_is_served_by_it():
    from human_eval import serve
    from palkit.serving import serve_wsgi
    assert serve.serve_wsgi is serve_wsgi
