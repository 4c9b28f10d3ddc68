"""Outputs made of several files, committed as one unit: a SIGKILL at any instant leaves the old set or the new one.

    with commit_dir("run/last") as tmp:      # a fresh, empty folder beside run/last
        write files into tmp
    # here run/last is the complete new set; had anything raised (or the process died), run/last is the old set

The new set is written into `.<name>.tmp` beside the final folder and moved into place with two renames
(final -> `.<name>.old`, tmp -> final; POSIX cannot rename a folder over a non-empty one), then the old set is
removed. A process killed between the two renames leaves no final folder but a complete `.<name>.old`: `recover`
(called by `commit_dir` and by readers before they look) moves it back, so readers always see a complete set, and
removes stray temporary folders. Single-file outputs use atomic_write.

A committed set can carry a manifest (`seal`, written last into the temporary folder): the name, size and SHA-256
of each file committed with it. Readers of folders that are also written by other programs, or by hand, check it
(`check_sealed`): a file changed after the commit, or one that was never committed with the others (left from an
older run, copied in), makes the set "mixed". `update_dir` adds or replaces files of a committed folder as one unit:
the folder is copied into the temporary folder, changed there and committed with the same two renames.

Crash tests: PAL_CRASH_AT=<label>:<point>[:<n>] makes the process SIGKILL itself the n-th time (default 1st) it
reaches that point of a commit labelled <label>; the points are `crash_point` calls (see POINTS).
"""
import hashlib
import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager

CRASH_ENV = "PAL_CRASH_AT"
# the boundaries of one commit: after the first file of the new set, when it is complete, between the two
# renames, after the swap (old set not yet removed)
POINTS = ("partial", "complete", "old_moved", "swapped")
MANIFEST = "manifest.json"
_reached = {}


def crash_point(label, point):
    """SIGKILL this process here when PAL_CRASH_AT names this point (crash-consistency tests only)."""
    wanted = os.environ.get(CRASH_ENV)
    if not wanted:
        return
    name, _, rest = wanted.partition(":")
    wanted_point, _, nth = rest.partition(":")
    if (name, wanted_point) != (label, point):
        return
    _reached[(label, point)] = _reached.get((label, point), 0) + 1
    if _reached[(label, point)] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def side_paths(final_dir):
    """(temporary, old) folder names that belong to `final_dir`."""
    parent, name = os.path.split(os.path.abspath(final_dir))
    return os.path.join(parent, f".{name}.tmp"), os.path.join(parent, f".{name}.old")


def restore(final_dir):
    """Put the last committed set back as `final_dir` when a kill came between the two renames of a commit (safe
    while another process writes: stray temporary folders are left alone)."""
    _, old = side_paths(final_dir)
    if os.path.isdir(old) and not os.path.exists(final_dir):
        os.rename(old, final_dir)  # the old set is complete, the new one was not in place


def recover(final_dir):
    """Bring `final_dir` back to its last committed set after a kill, and remove stray temporary folders."""
    restore(final_dir)
    for stray in side_paths(final_dir):
        if os.path.isdir(stray):
            shutil.rmtree(stray)


def fresh_dir(final_dir):
    """An empty temporary folder beside `final_dir` for its next set (a leftover one is removed first)."""
    recover(final_dir)
    tmp, _ = side_paths(final_dir)
    os.makedirs(tmp)
    return tmp


def commit(tmp, final_dir, label="dir"):
    """Move the complete set in `tmp` into place as `final_dir` (see the module docstring)."""
    crash_point(label, "complete")
    _, old = side_paths(final_dir)
    if os.path.exists(final_dir):
        os.rename(final_dir, old)
        crash_point(label, "old_moved")
    os.rename(tmp, final_dir)
    crash_point(label, "swapped")
    if os.path.isdir(old):
        shutil.rmtree(old)


def discard(final_dir):
    """Remove a committed folder as one unit: renamed to its temporary name first (stray, hence removed by recover)."""
    tmp, _ = side_paths(final_dir)
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    if os.path.isdir(final_dir):
        os.rename(final_dir, tmp)
        shutil.rmtree(tmp)


@contextmanager
def commit_dir(final_dir, label="dir"):
    """Yield a fresh temporary folder; when the block succeeds its files replace `final_dir` as one unit."""
    tmp = fresh_dir(final_dir)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit(tmp, final_dir, label)


@contextmanager
def update_dir(final_dir, label="dir"):
    """Like commit_dir, but the temporary folder starts as a copy of `final_dir` (hidden strays left out), so the
    block only writes what changes."""
    tmp = fresh_dir(final_dir)
    try:
        if os.path.isdir(final_dir):
            shutil.copytree(final_dir, tmp, dirs_exist_ok=True, ignore=lambda _, names: [n for n in names
                                                                                         if n.startswith(".")])
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    commit(tmp, final_dir, label)


# ---- manifests ------------------------------------------------------------------------------------------------------
def file_sha256(path):
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digest(path):
    """{"bytes", "sha256"} of a file."""
    return {"bytes": os.path.getsize(path), "sha256": file_sha256(path)}


def folder_files(folder):
    """The plain, non-hidden files of a folder (the manifest itself excluded), sorted."""
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and n != MANIFEST
                  and os.path.isfile(os.path.join(folder, n)))


class ManifestError(ValueError):
    """A manifest.json that is not one seal() wrote (truncated, edited, another program's)."""


def read_manifest(folder):
    """{file name: digest} of a folder's manifest; None when it has none; ManifestError when it is unreadable."""
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            files = json.load(f)["files"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise ManifestError(f"{MANIFEST} is unreadable") from e
    if not isinstance(files, dict) or not all(isinstance(d, dict) for d in files.values()):
        raise ManifestError(f"{MANIFEST} is unreadable")
    return files


def seal(folder, names=None):
    """Write the manifest of `names` (default: every file of the folder) into `folder`: its last write."""
    names = folder_files(folder) if names is None else sorted(names)
    files = {name: file_digest(os.path.join(folder, name)) for name in names}
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8") as f:
        json.dump({"files": files}, f, indent=1)
        f.write("\n")


def check_sealed(folder):
    """None when every file of `folder` is in its manifest with the recorded size and hash; otherwise a short
    reason ("not sealed (no manifest.json)", "X changed after ...", "X was not committed with ...")."""
    try:
        files = read_manifest(folder)
    except ManifestError as e:
        return str(e)
    if files is None:
        return f"not sealed (no {MANIFEST})"
    for name, digest in files.items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            return f"{name} is missing"
        if file_digest(path) != digest:
            return f"{name} changed after the folder was committed"
    foreign = [n for n in folder_files(folder) if n not in files]
    if foreign:
        return f"{', '.join(foreign)} {'was' if len(foreign) == 1 else 'were'} not committed with the other files"
    return None


# ------------------------------------------------------------------------------------------- single files

@contextmanager
def atomic_write(path, mode="w", encoding="utf-8", before_replace=None, label=None):
    """Write to a temporary file beside `path` and rename it into place only if the block succeeds.

    `before_replace(tmp)` runs on the complete temporary file just before it replaces `path`: a sidecar that must
    describe the new content before it is in place (pal.completeness's subset marks). `label` names the crash points
    of the replace (`complete` before it, `swapped` after it)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
        if before_replace is not None:
            before_replace(tmp)
        if label:
            crash_point(label, "complete")
        os.replace(tmp, path)
        if label:
            crash_point(label, "swapped")
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj, indent=2):
    """Atomically write `obj` as JSON (UTF-8, non-ASCII kept)."""
    with atomic_write(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")
