"""Administer a study database: per-annotator access links, export of everything stored.

    RUN/python -m human_eval.admin --db DB add NAME [NAME ...]     # create annotators, print their links
    RUN/python -m human_eval.admin --db DB links                   # print every annotator's link
    RUN/python -m human_eval.admin --db DB export OUT_DIR          # judgments/messages/assignments/tasks as CSV + JSON
"""
import csv
import os

from pal.checks import output_dir, output_file
from pal.cli import ArgumentParser, UserError, atomic_write, run_main, write_json

from human_eval.store import Store

TABLES = ("judgments", "messages", "assignments", "tasks")


def open_store(path, must_exist=True):
    if must_exist and not os.path.isfile(path):
        raise UserError(f"{path}: no such database (start the study once with RUN/python -m human_eval, or pass --db)")
    return Store(path)


def export(store, out_dir):
    """Every table as CSV and JSON (annotator names, never tokens)."""
    for table in TABLES:
        rows = store.export_rows(table)
        write_json(os.path.join(out_dir, f"{table}.json"), rows)
        with atomic_write(os.path.join(out_dir, f"{table}.csv")) as f:
            if rows:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        print(f"{table}: {len(rows)} rows -> {out_dir}/{table}.{{csv,json}}")


def print_links(store, base_url):
    annotators = store.annotators()
    if not annotators:
        print(f"no annotators yet: add some with  RUN/python -m human_eval.admin --db {store.path} add NAME")
    for a in annotators:
        print(f"  {a['name']}: {base_url.rstrip('/')}/a/{a['token']}/")


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", default="DATA/human_eval/study.db", type=output_file)
    p.add_argument("--base_url", default="http://127.0.0.1:5000", help="the server's address, for the links")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("add").add_argument("names", nargs="+")
    sub.add_parser("links")
    sub.add_parser("export").add_argument("out_dir", type=output_dir)
    args = p.parse_args(argv)
    store = open_store(args.db, must_exist=args.command != "add")
    base = args.base_url.rstrip("/")
    if args.command == "add":
        for name in args.names:
            try:
                print(f"  {name}: {base}/a/{store.add_annotator(name)}/")
            except ValueError as e:
                raise UserError(f"{args.db}: {e}")
    elif args.command == "links":
        print_links(store, base)
    else:
        export(store, args.out_dir)
    store.close()


if __name__ == "__main__":
    run_main(main)
