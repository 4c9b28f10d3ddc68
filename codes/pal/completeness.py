"""Whether a data file is complete: subset marks for the outputs of a --max_* run, and the share of empty personas.

A partial output (`annotate_esconv.py --max_dialogues N`) gets a sidecar `<file>.subset.json` saying what it holds
and the SHA-256 of the file it describes (a mark left beside a file that was replaced later is ignored). Each step
that reads a marked file says so in one line and marks what it writes (reformat's splits, prepare's features, infer's
result folder), so the mark reaches Table 3; RUN/reproduce_table3.sh refuses a partial PESConv unless ALLOW_PARTIAL=1.
"""
import os
import sys

from palkit.atomic import file_digest, write_json
from palkit.loaders import load_json
from pal.dialogues import EMPTY_PERSONA, normalise

MARK_SUFFIX = ".subset.json"
EMPTY_PERSONA_WARNING = 0.5  # share of empty persona_list entries above which a step warns


def mark_path(path):
    return str(path) + MARK_SUFFIX


def write_mark(path, description):
    """Mark `path` (already written) as partial: `description` says what it holds, e.g. "the first 50 of 1300
    dialogues of ESConv.json (annotate_esconv.py --max_dialogues 50)"."""
    write_json(mark_path(path), {"partial": description, "sha256": file_digest(path)["sha256"]})


def clear_mark(path):
    """A complete output: remove the mark an earlier partial run left beside it."""
    if os.path.exists(mark_path(path)):
        os.remove(mark_path(path))


def partial_description(path):
    """What a partial `path` holds (its mark's description), or None for a file without a current mark."""
    if not os.path.isfile(mark_path(path)):
        return None
    mark = load_json(mark_path(path), expect=dict, hint=f"delete it if {path} is complete")
    if mark.get("sha256") != file_digest(path)["sha256"]:
        return None  # the file was replaced after the mark was written
    return mark.get("partial")


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
    print(f"personas: {empty} of {total} persona_list entries of {what} are empty ({share:.0%})")
    if share > EMPTY_PERSONA_WARNING:
        print(f"warning: {share:.0%} of the personas of {what} are empty (above {EMPTY_PERSONA_WARNING:.0%}): PAL "
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
