"""Start the human-evaluation server: check every input, load the systems, create the tasks once, print the links.

    RUN/python -m human_eval --db study.db --test_file DATA/pesconv/test.txt \
        --system name=pal,config=strat,checkpoint=RUN/epoch-4.bin \
        --system name=joint,checkpoint=RUN2/epoch-4.bin --annotators ann1,ann2
    RUN/python -m human_eval --mode static --results pal=RES1 --results joint=RES2 --test_file DATA/pesconv/test.txt
    RUN/python -m human_eval --mode chat --system name=pal,config=strat,checkpoint=... --persona_extractor DIR

Restarting with the same database resumes the study (its setup must be the same); nothing submitted is lost.
The app is served by waitress (a production WSGI server) on every host; the access log names no access token.
"""
import logging
import os
import socket
import sys
from pathlib import Path

from palkit.argtypes import (existing_dir, existing_file, int_range, non_negative_float, non_negative_int,
                             output_file, positive_float, positive_int)
from pal.chat import DECODING_DEFAULTS
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, resolve_device, run_main
from chat_systems import spec_help

from human_eval import tasks as task_builders
from human_eval.admin import check_base_url, print_links
from human_eval.app import Settings, create_app
from human_eval.store import Store
from human_eval.systems import check_names, parse_system
from pal.options import add_chat_decoding_arguments, add_pretrained_argument
from palkit.options import add_device_argument, add_seed_argument
from palkit.serving import listening_port, serve_wsgi

CRITERIA = str(Path(__file__).with_name("criteria.json"))


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("--mode", choices=["interactive", "static", "chat"], default="interactive",
                   help="interactive: annotators talk to two systems, then compare them; static: they compare two "
                        "result folders' replies; chat: a browser interact with one system (strategy and persona)")
    p.add_argument("--db", default="DATA/human_eval/study.db", type=output_file,
                   help="the SQLite database (created when absent)")
    p.add_argument("--system", action="append", default=[], type=parse_system, metavar="SPEC",
                   help=f"a system (interactive: 2 or more; chat: 1 or more): {spec_help()}")
    p.add_argument("--results", action="append", default=[], type=task_builders.parse_results, metavar="NAME=DIR",
                   help="static mode: two result folders with gen.json")
    p.add_argument("--test_file", default=None, type=existing_file,
                   help="reformatted test.txt: the seeker cards (interactive) or the dialogue history (static)")
    p.add_argument("--num_dialogues", type=positive_int, default=100, help="interactive: the first N test dialogues")
    p.add_argument("--criteria", default=CRITERIA, type=existing_file, help="criteria JSON file")
    p.add_argument("--annotators", default="", help="comma-separated names to create (existing ones are kept)")
    p.add_argument("--annotators_per_task", type=non_negative_int, default=0, help="0: no limit")
    p.add_argument("--assignment_timeout", type=positive_float, default=30.0, metavar="MINUTES",
                   help="with --annotators_per_task: a task opened but idle this long is offered to others")
    add_seed_argument(p, 13, "A/B order per task and reply sampling")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int_range(0, 65535), default=5000)
    p.add_argument("--base_url", default=None, type=check_base_url,
                   help="the address annotators reach the server at, for the printed links (e.g. behind a proxy); "
                        "default: http://HOST:PORT, with this machine's address for --host 0.0.0.0")
    p.add_argument("--threads", type=positive_int, default=8, help="requests served at the same time")
    add_pretrained_argument(p)
    p.add_argument("--persona_extractor", default=None, type=existing_dir,
                   help="a persona extractor directory: live persona")
    add_device_argument(p)
    p.add_argument("--show_strategy", action="store_true", help="show strategies and persona (demos, not studies)")
    p.add_argument("--min_turns", type=positive_int, default=3)
    p.add_argument("--max_turns", type=positive_int, default=20)
    p.add_argument("--max_message_chars", type=positive_int, default=500)
    p.add_argument("--min_seconds_between_messages", type=non_negative_float, default=1.0)
    add_chat_decoding_arguments(p)
    return p


def build_tasks(args, criteria):
    if args.mode == "static":
        if len(args.results) != 2:
            raise UserError(f"--mode static needs exactly two --results NAME=DIR (got {len(args.results)})")
        if args.test_file and not os.path.isfile(args.test_file):
            raise UserError(f"--test_file {args.test_file}: no such file")
        return task_builders.static_tasks(*args.results, criteria, args.test_file, args.seed)
    check_names(args.system, 2 if args.mode == "interactive" else 1)
    if args.mode == "chat":
        return task_builders.chat_tasks(args.system)
    if not args.test_file or not os.path.isfile(args.test_file):
        raise UserError(f"--test_file {args.test_file}: no such file (interactive mode takes the seeker cards from a "
                        f"reformatted test.txt, e.g. DATA/pesconv/test.txt)")
    return task_builders.interactive_tasks(args.test_file, args.system, criteria, args.num_dialogues, args.seed)


def setup_record(args, criteria):
    """What the study is; a database made for another setup is refused (a new study needs a new --db)."""
    return {"mode": args.mode, "criteria": [c["name"] for c in criteria], "seed": args.seed,
            "systems": [s.study_record() for s in args.system],
            "results": [[name, os.path.abspath(path)] for name, path, _ in args.results],
            "test_file": args.test_file and os.path.abspath(args.test_file), "num_dialogues": args.num_dialogues}


def open_study(args, criteria, tasks):
    """(store, {name: token} of the annotators created now); only they get a link printed (tokens are stored hashed)."""
    os.makedirs(os.path.dirname(os.path.abspath(args.db)), exist_ok=True)
    store = Store(args.db)
    setup = setup_record(args, criteria)
    if store.task_count() == 0:
        store.set_meta("setup", setup)
        store.add_tasks(tasks)
    elif store.get_meta("setup") != setup:
        raise UserError(f"{args.db}: this database holds a study with another setup ({store.get_meta('setup')}); "
                        f"pass a new --db for a new study, or the same arguments to resume")
    existing = {a["name"] for a in store.annotators()}
    created = {}
    for name in filter(None, (n.strip() for n in args.annotators.split(","))):
        if name not in existing and name not in created:
            created[name] = store.add_annotator(name)
    return store, created


def load_systems(args):
    if args.mode == "static":
        return None
    from human_eval.systems import Systems  # lazy: loading systems imports torch and transformers
    decoding = {name: getattr(args, name) for name in DECODING_DEFAULTS}
    return Systems(args.system, args.pretrained_model_path, args.persona_extractor, decoding, args.seed,
                   resolve_device(args.device))


def settings_from(args):
    return Settings(mode=args.mode, min_turns=args.min_turns, max_turns=args.max_turns,
                    max_message_chars=args.max_message_chars,
                    min_seconds_between_messages=args.min_seconds_between_messages,
                    annotators_per_task=args.annotators_per_task, assignment_timeout=60 * args.assignment_timeout,
                    show_strategy=args.show_strategy, https=(args.base_url or "").startswith("https://"))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.mode != "static" and args.results:
        raise UserError("--results is for --mode static")
    if args.min_turns > args.max_turns:
        raise UserError(f"--min_turns {args.min_turns} is above --max_turns {args.max_turns}")
    criteria = task_builders.load_criteria(args.criteria)
    tasks = build_tasks(args, criteria)
    systems = load_systems(args)
    store, created = open_study(args, criteria, tasks)
    app = create_app(args.db, settings_from(args), criteria, systems)
    serve(app, args, store, created)


def machine_address():
    """This machine's address on its default route (no packet is sent), else its host name's; for printed links."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # a documentation address: only selects the outgoing interface
            return s.getsockname()[0]
        except OSError:
            return socket.gethostbyname(socket.gethostname())


def public_base_url(args, port):
    if args.base_url:
        return args.base_url
    host = machine_address() if args.host in ("0.0.0.0", "::", "") else args.host
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def serve(app, args, store, created):
    """Serve until Ctrl-C; print the links of the annotators created now and record the address."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("waitress").setLevel(logging.WARNING)  # its "Serving on" line; ours says where to go

    def ready(server):
        base_url = public_base_url(args, listening_port(server))
        store.set_meta("server", {"base_url": base_url})  # admin prints links with this address
        print(f"{args.mode} study, {store.task_count()} tasks, database {args.db}")
        print_links(store, base_url, created)
        store.close()
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: listening on {args.host}: anyone who can reach this machine and has a link can annotate "
                  f"(serve it behind HTTPS for a study over the internet)", file=sys.stderr)
        print(f"ready: {base_url}/ (Ctrl-C stops; restarting with the same arguments resumes)", flush=True)

    serve_wsgi(app, args.host, args.port, on_ready=ready, threads=args.threads, ident="human_eval",
               on_stop=lambda: print("stopped; every submitted judgment is in", args.db))

if __name__ == "__main__":
    run_main(main)
