"""Administer a study database: per-annotator access links, export of everything stored.

    RUN/python -m human_eval.admin --db DB add NAME [NAME ...]     # create annotators, print their links
    RUN/python -m human_eval.admin --db DB links                   # list the annotators (links are shown once)
    RUN/python -m human_eval.admin --db DB new-link NAME           # a new link for NAME (the old one stops working)
    RUN/python -m human_eval.admin --db DB revoke NAME             # NAME's link stops working (new-link restores)
    RUN/python -m human_eval.admin --db DB export OUT_DIR          # judgments/messages/assignments/tasks as CSV + JSON

Only a hash of each access token is stored, so a link is printed once, when it is made. new-link and revoke also end
the annotator's open sessions (a browser that opened the old link is asked for the new one). Links use the address the
server last recorded (its --base_url, or host and port), unless --base_url is given here.
"""
import csv
import os
from urllib.parse import urlsplit

from palkit.argtypes import output_dir, output_file
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import atomic_write, write_json

from human_eval.store import Store
from human_eval.text import export_value, has_visible, spreadsheet_cell

TABLES = ("judgments", "messages", "assignments", "tasks")


def check_base_url(text):
    """A --base_url: http(s)://host[:port][/path], without a trailing slash."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise UserError(f"--base_url {text!r}: expected http://HOST:PORT or https://HOST[/PATH]")
    return text.rstrip("/")


def open_store(path, must_exist=True):
    if must_exist and not os.path.isfile(path):
        raise UserError(f"{path}: no such database (start the study once with RUN/python -m human_eval, or pass --db)")
    return Store(path)


def export(store, out_dir):
    """Every table as CSV and JSON (annotator names, never tokens); text cleaned for spreadsheets (human_eval.text)."""
    for table in TABLES:
        rows = store.export_rows(table)
        write_json(os.path.join(out_dir, f"{table}.json"),
                   [{k: export_value(v) for k, v in row.items()} for row in rows])
        with atomic_write(os.path.join(out_dir, f"{table}.csv")) as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows({k: spreadsheet_cell(v) for k, v in row.items()} for row in rows)
        print(f"{table}: {len(rows)} rows -> {out_dir}/{table}.{{csv,json}}")


def print_links(store, base_url, tokens):
    """The links of {name: token} (annotators just made); the others are listed by name: their links were printed
    when made and only their hashes are stored."""
    for name, token in tokens.items():
        print(f"  {name}: {base_url}/a/{token}/")
    others = [a["name"] for a in store.annotators() if a["name"] not in tokens]
    if others:
        print(f"  (links printed before, not stored: {', '.join(others)}; a lost one is replaced by "
              f"RUN/python -m human_eval.admin --db {store.path} new-link NAME)")
    if not tokens and not others:
        print(f"no annotators yet: add some with  RUN/python -m human_eval.admin --db {store.path} add NAME")


def recorded_base_url(store, db_path):
    server = store.get_meta("server")
    if not server:
        raise UserError(f"{db_path}: no server address recorded yet (start the study once with RUN/python -m "
                        f"human_eval) and no --base_url given")
    return server["base_url"]


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="DATA/human_eval/study.db", type=output_file)
    p.add_argument("--base_url", default=None, type=check_base_url,
                   help="the server's address for the links (default: the one the server recorded in the database)")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("add").add_argument("names", nargs="+")
    sub.add_parser("links")
    sub.add_parser("new-link").add_argument("name")
    sub.add_parser("revoke").add_argument("name")
    sub.add_parser("export").add_argument("out_dir", type=output_dir)
    args = p.parse_args(argv)
    names = args.names if args.command == "add" else [args.name] if args.command in ("new-link", "revoke") else []
    blank = [n for n in names if not has_visible(n) or n != n.strip()]
    if blank:
        raise UserError(f"annotator names must be non-blank without surrounding spaces, got {blank}")
    store = open_store(args.db, must_exist=args.command != "add")
    try:
        if args.command == "revoke":
            try:
                store.revoke(args.name)
            except ValueError as e:
                raise UserError(f"{args.db}: {e}")
            print(f"  {args.name}: link revoked, open sessions ended (a new link: RUN/python -m human_eval.admin "
                  f"--db {args.db} new-link {args.name})")
        elif names:
            base = args.base_url or recorded_base_url(store, args.db)
            make = store.add_annotator if args.command == "add" else store.new_token
            for name in names:  # each link printed as soon as it exists (a later refused name loses none)
                try:
                    print(f"  {name}: {base}/a/{make(name)}/")
                except ValueError as e:
                    raise UserError(f"{args.db}: {e}")
        elif args.command == "links":
            print_links(store, args.base_url, {})
        else:
            export(store, args.out_dir)
    finally:
        store.close()


if __name__ == "__main__":
    run_main(main)
