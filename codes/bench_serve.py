"""Requests per second and latency of an OpenAI-compatible chat endpoint (RUN/serve.sh) under concurrent clients.

    RUN/python codes/bench_serve.py --compare demo_out/strat.strat/demo_run --clients 50 --output bench_serve.json
    RUN/python codes/bench_serve.py --compare name=smol,llm=smollm2 --test_file demo_out/pesconv/test.txt ...
    RUN/python codes/bench_serve.py --endpoint http://127.0.0.1:8000/v1 --test_file demo_out/pesconv/test.txt

--compare SYSTEM (a run folder, an epoch-N.bin or a system spec) starts codes/serve.py twice on free ports of
127.0.0.1, batched (--max_batch) and with --max_batch 1, and sends the same requests to each, in one run (in
--rounds rounds, the servers alternating): the output gives `batched` and `unbatched` (req_per_s, p50_s, p95_s),
`throughput_ratio`, and how many replies the two servers gave identically (each batched reply must be what its
request gets alone). Each client sends its requests one
after the other: the conversations of the test split's examples in turn, each request with its own seed.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from palkit.argtypes import existing_file, non_negative_float, output_file, positive_int
from palkit.atomic import write_json
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.run_folder import read_run_args

from chat_systems.server import MAX_BATCH, MAX_TOKENS_LIMIT

SERVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve.py")
START_TIMEOUT_S = 600  # loading a model (and SmolLM2's one-time conversion) on a busy CPU


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--compare", metavar="SYSTEM",
                        help="a run folder, an epoch-N.bin or a system spec: served batched and one at a time")
    target.add_argument("--endpoint", help="a running server's base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--test_file", type=existing_file, default=None,
                   help="reformatted test.txt (default with a run folder: the test.txt beside its data)")
    p.add_argument("--clients", type=positive_int, default=8,
                   help="concurrent clients, each sending its requests one after the other")
    p.add_argument("--requests", type=positive_int, default=10, help="per client")
    p.add_argument("--temperature", type=non_negative_float, default=None,
                   help="default: the system's (PAL: the released interaction settings, sampled)")
    p.add_argument("--max_tokens", type=positive_int, default=None, help="default: the system's")
    p.add_argument("--max_batch", type=positive_int, default=MAX_BATCH, help="--compare: the batched server's")
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="--compare: the load in this many rounds, the servers alternating (at most --requests)")
    p.add_argument("--serve_args", default="", help="--compare: more codes/serve.py arguments for both servers")
    p.add_argument("--output", type=output_file, default=None, help="write every number to this JSON file")
    return p


def default_test_file(system):
    """The test.txt beside the data a run folder was trained on (its args.json's eval_input_file)."""
    run_dir = system if os.path.isdir(system) else os.path.dirname(os.path.abspath(system))
    recorded = read_run_args(run_dir) or {}
    data = recorded.get("eval_input_file") or recorded.get("train_input_file")
    candidate = data and os.path.join(os.path.dirname(data), "test.txt")
    if not candidate or not os.path.isfile(candidate):
        raise UserError(f"--test_file: {system} names no data folder with a test.txt; give --test_file")
    return candidate


def workload(args):
    """Per client, its request bodies: client c's r-th is example (c * requests + r), seed c * requests + r."""
    from chat_systems.supporter import supporter_examples, supporter_messages  # lazy: torch, kept out of --help
    conversations = [supporter_messages(h) for _, h, _ in supporter_examples(args.test_file)]
    decoding = {k: v for k, v in (("temperature", args.temperature), ("max_tokens", args.max_tokens)) if v is not None}
    return [[{"messages": conversations[(c * args.requests + r) % len(conversations)], "seed": c * args.requests + r,
              **decoding} for r in range(args.requests)] for c in range(args.clients)]


def run_load(url, clients):
    """Every client's requests, the clients at once: (latencies, wall time, the replies in request order)."""
    import requests  # lazy: only an endpoint needs it
    url = url.rstrip("/") + "/chat/completions"

    def client(bodies):
        session, out = requests.Session(), []
        for body in bodies:
            start = time.perf_counter()
            try:
                response = session.post(url, json=body, timeout=(5, 1800))
            except requests.ConnectionError:
                raise UserError(f"cannot reach {url}; start the server first (bash RUN/serve.sh ...)")
            if response.status_code != 200:
                raise UserError(f"{url} answered HTTP {response.status_code}: {response.text[:200]}")
            out.append((time.perf_counter() - start, response.json()["choices"][0]["message"]["content"]))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(len(clients)) as pool:
        results = list(pool.map(client, clients))
    return [t for r in results for t, _ in r], time.perf_counter() - start, [text for r in results for _, text in r]


def summary(latencies, wall):
    latencies = sorted(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    return {"requests": len(latencies), "wall_s": round(wall, 3), "req_per_s": round(len(latencies) / wall, 3),
            "p50_s": round(statistics.median(latencies), 3), "p95_s": round(p95, 3)}


class ServerProcess:
    """A server command (codes/serve.py and its arguments) running until stop(), on the port its arguments say (0:
    a free one): `url` from its "ready" line, its stderr lines (the access log) in `log`, read as they come."""

    def __init__(self, argv, env=None, start_timeout=START_TIMEOUT_S):
        self.proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.log, ready = [], []
        threading.Thread(target=self.read_log, daemon=True).start()
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=start_timeout)
        if not ready or not ready[0].startswith("ready: "):
            self.stop()
            raise UserError(f"{' '.join(argv)} did not start: {' | '.join(line.strip() for line in self.log[-3:])}")
        self.url = ready[0].split()[1]

    def read_log(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=60)


def compare(args, clients):
    """The same load on the system served batched and one request at a time: both servers up, the load in rounds
    (each client's r-th request in round r % rounds), the two servers alternating first, so that a change of the
    machine's load during the run falls on both alike."""
    target = ["--system", args.compare] if "=" in args.compare else [args.compare]
    servers, totals = {}, {}
    try:
        for label, max_batch in (("unbatched", 1), ("batched", args.max_batch)):
            servers[label] = ServerProcess([SERVE, *target, "--port", "0", *args.serve_args.split(), "--max_batch",
                                            str(max_batch)])
            totals[label] = ([], 0.0, [])
        for k in range(args.rounds):
            load = [bodies[k::args.rounds] for bodies in clients]
            for label in (("unbatched", "batched") if k % 2 == 0 else ("batched", "unbatched")):
                print(f"round {k + 1}/{args.rounds}: {label} ({servers[label].url}), {sum(map(len, load))} requests",
                      file=sys.stderr)
                latencies, wall, replies = run_load(servers[label].url, load)
                done = totals[label]
                totals[label] = (done[0] + latencies, done[1] + wall, done[2] + replies)
    finally:
        for server in servers.values():
            server.stop()
    results = {label: {**summary(latencies, wall), "max_batch": 1 if label == "unbatched" else args.max_batch}
               for label, (latencies, wall, _) in totals.items()}
    same = sum(a == b for a, b in zip(totals["batched"][2], totals["unbatched"][2]))
    return {**results, "rounds": args.rounds,
            "throughput_ratio": round(results["batched"]["req_per_s"] / results["unbatched"]["req_per_s"], 3),
            "p95_ratio": round(results["batched"]["p95_s"] / results["unbatched"]["p95_s"], 3),
            "identical_replies": same, "requests": len(totals["batched"][2])}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.compare and args.rounds > args.requests:
        raise UserError(f"--rounds {args.rounds}: at most --requests ({args.requests}); each round sends every client's "
                        f"share of its requests")
    if args.max_tokens is not None and args.max_tokens > MAX_TOKENS_LIMIT:
        raise UserError(f"--max_tokens {args.max_tokens}: the server allows at most {MAX_TOKENS_LIMIT}")
    if args.test_file is None:
        if args.compare is None or "=" in args.compare:
            raise UserError("--test_file: give a reformatted test.txt (its conversations are the requests)")
        args.test_file = default_test_file(args.compare)
    clients = workload(args)
    load_before = os.getloadavg()
    if args.compare:
        report = compare(args, clients)
        lines = [f"{label:9s} {r['req_per_s']:7.2f} req/s | p50 {r['p50_s']:7.2f} s | p95 {r['p95_s']:7.2f} s | "
                 f"--max_batch {r['max_batch']}" for label, r in ((k, report[k]) for k in ("unbatched", "batched"))]
        lines.append(f"throughput ratio {report['throughput_ratio']:.2f}x, p95 ratio {report['p95_ratio']:.2f} "
                     f"(batched / unbatched); identical replies {report['identical_replies']} of "
                     f"{report['requests']}")
    else:
        latencies, wall, _ = run_load(args.endpoint, clients)
        report = summary(latencies, wall)
        lines = [f"{report['requests']} requests from {args.clients} clients in {report['wall_s']:.1f} s: "
                 f"{report['req_per_s']:.2f} requests/s; latency median {report['p50_s']:.2f} s, p95 "
                 f"{report['p95_s']:.2f} s"]
    report = {"system": args.compare or args.endpoint, "test_file": args.test_file, "clients": args.clients,
              "requests_per_client": args.requests, "temperature": args.temperature, "max_tokens": args.max_tokens,
              "load_average_before": [round(x, 2) for x in load_before],
              "load_average_after": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(), **report}
    lines.append(f"load average before {report['load_average_before']}, after {report['load_average_after']}")
    print("\n".join(lines))
    if args.output:
        write_json(args.output, report)
        print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
