"""Start the human-evaluation server: check every input, load the systems, create the tasks once, print the links.

    RUN/python -m human_eval --db study.db --test_file DATA/pesconv/test.txt \
        --system name=pal,config=strat,checkpoint=RUN/epoch-4.bin \
        --system name=joint,config=strat_no_persona,checkpoint=RUN2/epoch-4.bin --annotators ann1,ann2
    RUN/python -m human_eval --mode static --results pal=RES1 --results joint=RES2 --test_file DATA/pesconv/test.txt
    RUN/python -m human_eval --mode chat --system name=pal,config=strat,checkpoint=... --persona_extractor DIR

Restarting with the same database resumes the study (its setup must be the same); nothing submitted is lost.
"""
import argparse
import os
import sys
from pathlib import Path

from pal.checks import (DECODING_RANGES, existing_dir, existing_file, int_range, non_negative_float, non_negative_int,
                        output_file, positive_int)
from pal.chat import DECODING_DEFAULTS
from pal.cli import ArgumentParser, UserError, resolve_device, run_main

from human_eval import tasks as task_builders
from human_eval.admin import print_links
from human_eval.app import Settings, create_app
from human_eval.store import Store
from human_eval.systems import check_names, parse_system

CRITERIA = str(Path(__file__).with_name("criteria.json"))


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--mode", choices=["interactive", "static", "chat"], default="interactive")
    p.add_argument("--db", default="DATA/human_eval/study.db", type=output_file,
                   help="the SQLite database (created when absent)")
    p.add_argument("--system", action="append", default=[], type=parse_system, metavar="SPEC",
                   help="name=NAME,config=CONFIG,checkpoint=FILE[,alpha=A] (interactive: 2 or more; chat: 1 or more)")
    p.add_argument("--results", action="append", default=[], type=task_builders.parse_results, metavar="NAME=DIR",
                   help="static mode: two result folders with gen.json")
    p.add_argument("--test_file", default=None, type=existing_file,
                   help="reformatted test.txt: the seeker cards (interactive) or the dialogue history (static)")
    p.add_argument("--num_dialogues", type=positive_int, default=100, help="interactive: the first N test dialogues")
    p.add_argument("--criteria", default=CRITERIA, type=existing_file, help="criteria JSON file")
    p.add_argument("--annotators", default="", help="comma-separated names to create (existing ones are kept)")
    p.add_argument("--annotators_per_task", type=non_negative_int, default=0, help="0: no limit")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=13, help="A/B order per task and reply sampling")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int_range(0, 65535), default=5000)
    p.add_argument("--pretrained_model_path", default=None)
    p.add_argument("--persona_extractor", default=None, type=existing_dir,
                   help="a persona extractor directory: live persona")
    p.add_argument("--device", default="auto")
    p.add_argument("--show_strategy", action="store_true", help="show strategies and persona (demos, not studies)")
    p.add_argument("--min_turns", type=positive_int, default=3)
    p.add_argument("--max_turns", type=positive_int, default=20)
    p.add_argument("--max_message_chars", type=positive_int, default=500)
    p.add_argument("--min_seconds_between_messages", type=non_negative_float, default=1.0)
    g = p.add_argument_group("decoding (defaults: the authors' RUN/interact_strat.sh)")
    for name, value in DECODING_DEFAULTS.items():
        g.add_argument(f"--{name}", type=DECODING_RANGES[name], default=value)
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
            "systems": [[s.name, s.config, os.path.abspath(s.checkpoint), s.alpha] for s in args.system],
            "results": [[name, os.path.abspath(path)] for name, path, _ in args.results],
            "test_file": args.test_file and os.path.abspath(args.test_file), "num_dialogues": args.num_dialogues}


def open_study(args, criteria, tasks):
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
    for name in filter(None, (n.strip() for n in args.annotators.split(","))):
        if name not in existing:
            store.add_annotator(name)
    return store


def load_systems(args):
    if args.mode == "static":
        return None
    from human_eval.systems import Systems
    decoding = {name: getattr(args, name) for name in DECODING_DEFAULTS}
    return Systems(args.system, args.pretrained_model_path, args.persona_extractor, decoding, args.seed,
                   resolve_device(args.device))


def settings_from(args):
    return Settings(mode=args.mode, min_turns=args.min_turns, max_turns=args.max_turns,
                    max_message_chars=args.max_message_chars,
                    min_seconds_between_messages=args.min_seconds_between_messages,
                    annotators_per_task=args.annotators_per_task, show_strategy=args.show_strategy)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.mode != "static" and args.results:
        raise UserError("--results is for --mode static")
    if args.min_turns > args.max_turns:
        raise UserError(f"--min_turns {args.min_turns} is above --max_turns {args.max_turns}")
    criteria = task_builders.load_criteria(args.criteria)
    tasks = build_tasks(args, criteria)
    systems = load_systems(args)
    store = open_study(args, criteria, tasks)
    app = create_app(args.db, settings_from(args), criteria, systems)
    serve(app, args, store)


def serve(app, args, store):
    from werkzeug.serving import make_server
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pass another --port")
    base_url = f"http://{args.host}:{server.server_port}"
    print(f"{args.mode} study, {store.task_count()} tasks, database {args.db}; annotator links:")
    print_links(store, base_url)
    store.close()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine and has a link can annotate",
              file=sys.stderr)
    print(f"ready: {base_url}/ (Ctrl-C stops; restarting with the same arguments resumes)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped; every submitted judgment is in", args.db)


if __name__ == "__main__":
    run_main(main)
