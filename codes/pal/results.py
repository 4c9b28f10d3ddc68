"""Result folders: gen.json and every file computed from it, committed as one unit (palkit.atomic).

codes/infer.py writes a whole result folder (gen.json, gen.txt, infer_args.json, metric.json, metric_list.json,
metric_nlgeval*.json, the strategy confusion matrix and report) into a fresh folder, seals it (manifest.json: size
and SHA-256 of each file) and swaps it in: a re-run into an existing folder killed at any instant leaves the earlier
complete folder or the new one, never metric.json of one run beside gen.json of the other. Scripts that add files
later (evaluate.py, get_EAD_score.py's ead.json, get_cos_similarity.py's cos_similarity*.json) change a copy of
the folder and commit it the same way (`updated_result_folder`); what they write is computed from the folder's gen.json,
so every sealed file describes the gen.json it is sealed with.

Readers (`check_result_folder`: evaluate.py, summarize_results.py, compare_systems.py) refuse a mixed folder (a
file changed after the commit, or one that was not committed with the gen.json beside it) in one line, and note an
unsealed one (written by the authors' code or an older infer.py) in one line before using it.
"""
import os
import sys
from contextlib import contextmanager

from palkit.atomic import (MANIFEST, ManifestError, check_sealed, commit_dir, file_digest, folder_files, read_manifest,
                           restore, seal, update_dir)
from palkit.cli import UserError

GEN_FILE = "gen.json"
LABEL = "result"  # PAL_CRASH_AT=result:<point> (palkit.atomic.POINTS)
# the script that (re)writes a file computed from gen.json, for the one-line advice on a mixed folder
WRITERS = (("ead", "codes/get_EAD_score.py --input_file"), ("cos_similarity", "codes/get_cos_similarity.py "
                                                                               "--input_file"))


def _visible(folder):
    return [n for n in os.listdir(folder) if not n.startswith(".")] if os.path.isdir(folder) else []


def _check_replaceable(folder, what_to_do):
    """A result folder is replaced as a whole: refuse a folder that is something else (files but no gen.json, or
    subfolders, which a result folder never has)."""
    visible = _visible(folder)
    if visible and GEN_FILE not in visible and MANIFEST not in visible:
        raise UserError(f"{folder} holds files but no {GEN_FILE}: not a result folder (one is replaced as a whole); "
                        f"{what_to_do}")
    inner = next((n for n in visible if os.path.isdir(os.path.join(folder, n))), None)
    if inner:
        raise UserError(f"{folder} holds the folder {inner}: not a result folder (one is replaced as a whole); "
                        f"{what_to_do}")


@contextmanager
def new_result_folder(folder):
    """A fresh temporary folder; when the block succeeds it is sealed and replaces `folder` as one unit."""
    _check_replaceable(folder, "pass a new folder (or an earlier result folder) with --save_dir")
    with commit_dir(folder, LABEL) as tmp:
        yield tmp
        seal(tmp)


def _manifest(folder):
    """The folder's manifest files; None without a manifest; {} (vouching for nothing) when it is unreadable."""
    try:
        return read_manifest(folder)
    except ManifestError:
        return {}


def _verified(folder):
    """The files of the folder's manifest that still have their recorded size and hash."""
    files = _manifest(folder) or {}
    return {n for n, digest in files.items() if os.path.isfile(os.path.join(folder, n))
            and file_digest(os.path.join(folder, n)) == digest}


@contextmanager
def updated_result_folder(folder):
    """A temporary copy of `folder` to change; when the block succeeds it is sealed and replaces `folder`.

    Sealed: gen.json, what the block wrote or changed, and what the earlier manifest vouched for. A file of an
    unsealed or mixed folder that the block left alone stays out of the manifest, so readers still report it."""
    restore(folder)
    _check_replaceable(folder, "pass --output_file to write elsewhere, or move gen.json into a folder of its own")
    sealed = _verified(folder)
    if _manifest(folder) is None:  # unsealed: what infer.py writes together with gen.json came with it
        sealed |= {n for n in ("gen.txt", "infer_args.json") if os.path.isfile(os.path.join(folder, n))}
    before = {n: file_digest(os.path.join(folder, n)) for n in folder_files(folder)}
    with update_dir(folder, LABEL) as tmp:
        yield tmp
        now = folder_files(tmp)
        changed = {n for n in now if before.get(n) != file_digest(os.path.join(tmp, n))}
        seal(tmp, (changed | sealed | {GEN_FILE}) & set(now))


def result_folder_of(path):
    """The result folder of a folder or gen.json path (None for another file), after a kill between the two
    renames of a commit is undone."""
    folder = os.path.dirname(os.path.abspath(path)) if os.path.basename(path) == GEN_FILE else path
    restore(folder)
    return folder if os.path.isdir(folder) else None


def _advice(folder, problem):
    for prefix, command in WRITERS:
        if problem.startswith(prefix):
            return f"rerun `python {command} {folder}` or delete the file"
    return f"rerun codes/infer.py into it, or `RUN/python codes/evaluate.py {folder}` to rescore its gen.json"


def check_result_folder(folder, note_unsealed=True):
    """Refuse a mixed result folder (UserError, one line); note an unsealed one on stderr; nothing for a sealed one."""
    problem = check_sealed(folder)
    if problem is None:
        return
    if _manifest(folder) is None:
        if note_unsealed:
            print(f"note: {folder}: {problem}: written by the authors' code or an older infer.py, so its files are "
                  f"not known to describe its {GEN_FILE}; `RUN/python codes/evaluate.py {folder}` rescores and seals it",
                  file=sys.stderr)
        return
    raise UserError(f"{folder}: mixed result folder ({problem}), so its files may not describe its {GEN_FILE}; "
                    f"{_advice(folder, problem)}")
