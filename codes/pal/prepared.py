"""The prepared training features of codes/prepare.py, read by codes/train.py.

A preparation is one set of files in <prepared_dir>/features/:
  data.pkl       the training examples (a pickled list of pal.inputter.Feature, in file order)
  meta.json      the arguments and tokenizer they were made with (train.py refuses features made with others)
  manifest.json  size and SHA-256 of both (palkit.atomic.seal)
The set is written into a fresh folder and committed as one unit (palkit.atomic.commit_dir), the mechanism of the
training states and result folders: a prepare.py killed at any instant over an earlier preparation leaves the earlier
set or the new one, never data.pkl of one beside meta.json of the other. The set has a subfolder of its own because
<prepared_dir> (DATA/{inputter}.{config}/) also holds the training runs, so it cannot be swapped as a whole; a
manifest-only scheme (data.pkl's hash in meta.json, written last) would detect a kill between the two files but
lose the earlier preparation. load_prepared checks the manifest too, so a set mixed by hand is refused in one line.
"""
import os
import pickle

from palkit.atomic import check_sealed, commit_dir, crash_point, recover, seal, write_json
from palkit.loaders import expect_type, load_json, load_pickle
from palkit.cli import UserError

FEATURES_DIR = "features"
FEATURES_FILE = "data.pkl"
META_FILE = "meta.json"
FORMAT_VERSION = 2  # 2: the files in features/ with a manifest; 1: data.pkl and meta.json in the prepared folder


def default_prepared_dir(inputter_name, config_name):
    return os.path.abspath(os.path.join("DATA", f"{inputter_name}.{config_name}"))


def features_dir(prepared_dir):
    return os.path.join(prepared_dir, FEATURES_DIR)


def write_prepared(prepared_dir, features, meta):
    """Commit features + meta (FORMAT_VERSION added) as <prepared_dir>/features/ in one unit."""
    with commit_dir(features_dir(prepared_dir), FEATURES_DIR) as tmp:
        with open(os.path.join(tmp, FEATURES_FILE), "wb") as f:
            pickle.dump(features, f, protocol=pickle.HIGHEST_PROTOCOL)
        crash_point(FEATURES_DIR, "partial")
        write_json(os.path.join(tmp, META_FILE), {"format_version": FORMAT_VERSION, **meta})
        seal(tmp)


def _rerun_hint():
    return "run codes/prepare.py (RUN/prepare_*.sh) with the same --config_name/--inputter_name"


def load_prepared(prepared_dir, expected):
    """(features, meta) of a prepare.py output; `expected` maps meta keys to the values the caller needs."""
    folder = features_dir(prepared_dir)
    recover(folder)  # a kill between the two renames of a commit: the earlier set is put back
    if not os.path.isdir(folder):
        if os.path.isfile(os.path.join(prepared_dir, FEATURES_FILE)):
            raise UserError(f"{prepared_dir}: {FEATURES_FILE} in the old layout (no {FEATURES_DIR}/ folder); "
                            f"{_rerun_hint()} again")
        raise UserError(f"no prepared features in {prepared_dir} (need {FEATURES_DIR}/{FEATURES_FILE}); "
                        f"{_rerun_hint()} first")
    problem = check_sealed(folder)
    if problem:
        raise UserError(f"{folder}: {problem}, so its features may not match its {META_FILE}; {_rerun_hint()} again")
    meta_path, data_path = os.path.join(folder, META_FILE), os.path.join(folder, FEATURES_FILE)
    rerun = f"{_rerun_hint()} again"
    meta = load_json(meta_path, expect=dict, hint=rerun)
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{meta_path}: made by another version of prepare.py; {_rerun_hint()} again")
    differing = [f"{k}: prepared {meta.get(k)!r}, now {v!r}" for k, v in expected.items() if meta.get(k) != v]
    if differing:
        raise UserError(f"{prepared_dir} was prepared with other settings ({'; '.join(differing)}); run "
                        f"codes/prepare.py again with these settings or pass matching arguments")
    features = expect_type(load_pickle(data_path, hint=rerun), list, data_path, rerun)
    if len(features) != meta.get("n_examples"):
        raise UserError(f"{data_path}: holds {len(features)} examples, {meta_path} says {meta.get('n_examples')}; "
                        f"{rerun}")
    return features, meta
