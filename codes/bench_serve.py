"""Requests per second and latency of an OpenAI-compatible chat endpoint (RUN/serve.sh) under concurrent clients.

    RUN/python codes/bench_serve.py --endpoint http://127.0.0.1:8000/v1 --test_file demo_out/pesconv/test.txt \
        [--clients 8] [--requests 10] [--temperature 0]

Each client sends its requests one after the other (the conversations of the test split's examples, in turn).
"""
import importlib.util  # a plain `python` outside the project's environment: one line saying how to run this script
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("pal") is None:
    import os, sys
    launcher = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "RUN", "python"))
    launcher = launcher if os.sep in launcher else os.path.join(os.curdir, launcher)  # a path, not a command name
    sys.exit(f"error: this is not the project's environment (no torch or pal here): run it as  {launcher} "
             f"{' '.join(sys.argv)}")
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from palkit.checks import existing_file, positive_int
from palkit.cli import ArgumentParser, UserError, run_main


def main(argv=None):
    import requests
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", required=True)
    p.add_argument("--test_file", required=True, type=existing_file)
    p.add_argument("--clients", type=positive_int, default=8)
    p.add_argument("--requests", type=positive_int, default=10, help="per client")
    p.add_argument("--temperature", type=float, default=0.0)
    args = p.parse_args(argv)
    from chat_systems.supporter import supporter_messages, test_examples
    conversations = [supporter_messages(h) for _, h, _ in test_examples(args.test_file, None)]
    url = args.endpoint.rstrip("/") + "/chat/completions"

    def client(c):
        session, latencies = requests.Session(), []
        for r in range(args.requests):
            body = {"messages": conversations[(c * args.requests + r) % len(conversations)],
                    "temperature": args.temperature}
            start = time.perf_counter()
            try:
                response = session.post(url, json=body, timeout=(5, 600))
            except requests.ConnectionError:
                raise UserError(f"cannot reach {url}; start the server first (bash RUN/serve.sh ...)")
            if response.status_code != 200:
                raise UserError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
            latencies.append(time.perf_counter() - start)
        return latencies

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        latencies = sorted(t for ts in pool.map(client, range(args.clients)) for t in ts)
    wall = time.perf_counter() - start
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    print(f"{len(latencies)} requests from {args.clients} clients in {wall:.1f} s: {len(latencies) / wall:.2f} "
          f"requests/s; latency median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s", file=sys.stdout)


if __name__ == "__main__":
    run_main(main)
