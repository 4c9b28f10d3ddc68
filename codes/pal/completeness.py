"""Whether a data file is complete: subset marks for the outputs of a --max_* run, and the share of empty personas.

A partial output (`annotate_esconv.py --max_dialogues N`) gets a sidecar `<file>.subset.json` saying what it holds,
keyed by the SHA-256 of the content it describes (a mark left beside a file that was replaced later is ignored).
`marked_write` commits a file and its mark as one unit: the mark gains the new content's entry before the content is
renamed into place, and keeps only the current content's entry after, so a kill at any instant leaves a file whose
mark names it exactly when it is partial (never a partial file that looks complete). Each step
that reads a marked file says so in one line and marks what it writes (reformat's splits, prepare's features, infer's
result folder), so the mark reaches Table 3; RUN/reproduce_table3.sh refuses a partial PESConv unless ALLOW_PARTIAL=1.
"""
import os
import sys
from contextlib import contextmanager

from palkit.atomic import atomic_write, file_digest, write_json
from palkit.loaders import load_json
from pal.dialogues import EMPTY_PERSONA, normalise

MARK_SUFFIX = ".subset.json"
EMPTY_PERSONA_WARNING = 0.5  # share of empty persona_list entries above which a step warns


def mark_path(path):
    return str(path) + MARK_SUFFIX


def _entries(path):
    """{SHA-256 of a content of `path`: what that content holds} from its mark ({} without one)."""
    if not os.path.isfile(mark_path(path)):
        return {}
    mark = load_json(mark_path(path), expect=dict, hint=f"delete it if {path} is complete")
    partial = mark.get("partial")
    if isinstance(partial, str):  # the one-entry form of earlier versions
        return {mark.get("sha256"): partial}
    return {k: v for k, v in partial.items() if isinstance(v, str)} if isinstance(partial, dict) else {}


@contextmanager
def marked_write(path, partial=None, label=None):
    """atomic_write(path) committed with its subset mark as one unit (module docstring). `partial` says what a
    partial output holds, e.g. "the first 50 of 1300 dialogues of ESConv.json (annotate_esconv.py --max_dialogues
    50)"; None: the output is complete (its mark, if any, goes)."""
    def add_entry(tmp):
        entries = _entries(path)
        entries[file_digest(tmp)["sha256"]] = partial
        write_json(mark_path(path), {"partial": entries})
    with atomic_write(path, before_replace=add_entry if partial else None, label=label) as f:
        yield f
    settle_mark(path)


def settle_mark(path):
    """Keep only the entry of `path`'s current content in its mark; no entry: no mark."""
    entries = _entries(path)
    current = file_digest(path)["sha256"] if os.path.isfile(path) else None
    if current in entries:
        if len(entries) > 1:
            write_json(mark_path(path), {"partial": {current: entries[current]}})
    elif os.path.exists(mark_path(path)):
        os.remove(mark_path(path))


def partial_description(path):
    """What a partial `path` holds (its mark's entry for its content), or None for a complete file."""
    entries = _entries(path)
    return entries.get(file_digest(path)["sha256"]) if entries else None


def note_partial(path):
    """One line on stderr when `path` is partial; returns its description (None when complete)."""
    description = partial_description(path)
    if description:
        print(f"note: {path} is partial: {description}", file=sys.stderr)
    return description


def empty_persona_share(dialogues):
    """(empty, total) persona_list entries over dialogues (dicts); empty: "" or "<input>" (no persona sentence)."""
    entries = [p for d in dialogues if isinstance(d, dict) for p in (d.get("persona_list") or [])
               if isinstance(p, str)]
    return sum(normalise(p) in ("", EMPTY_PERSONA) for p in entries), len(entries)


def report_empty_personas(dialogues, what):
    """Print the share of empty personas in `dialogues`; a warning above EMPTY_PERSONA_WARNING."""
    empty, total = empty_persona_share(dialogues)
    if total == 0:
        return
    share = empty / total
    print(f"personas: {empty} of {total} persona_list entries of {what} are empty ({share:.0%}); an entry is the "
          f"persona inferred after one seeker turn, from the seeker's 3rd turn on (the replies before it have none, so "
          f"a result folder counts more records without a persona)")
    if share > EMPTY_PERSONA_WARNING:
        print(f"warning: {share:.0%} of the persona_list entries of {what} are empty (above "
              f"{EMPTY_PERSONA_WARNING:.0%}): PAL "
              f"trained on them learns little from personas; check the persona extractor", file=sys.stderr)


def main(argv=None):
    """`RUN/python -m pal.completeness FILE`: prints `partial: ...` and exits 1 for a partial file, else exits 0
    (RUN/reproduce_table3.sh asks this of DATA/PESConv.json)."""
    paths = sys.argv[1:] if argv is None else argv
    partial = [(p, partial_description(p)) for p in paths]
    for path, description in partial:
        if description:
            print(f"{path}: partial: {description}")
    return 1 if any(d for _, d in partial) else 0


if __name__ == "__main__":
    sys.exit(main())
