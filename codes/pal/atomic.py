"""Outputs made of several files, committed as one unit: a SIGKILL at any instant leaves the old set or the new one.

    with commit_dir("run/last") as tmp:      # a fresh, empty folder beside run/last
        write files into tmp
    # here run/last is the complete new set; had anything raised (or the process died), run/last is the old set

The new set is written into `.<name>.tmp` beside the final folder and moved into place with two renames
(final -> `.<name>.old`, tmp -> final; POSIX cannot rename a folder over a non-empty one), then the old set is
removed. A process killed between the two renames leaves no final folder but a complete `.<name>.old`: `recover`
(called by `commit_dir` and by readers before they look) moves it back, so readers always see a complete set, and
removes stray temporary folders. Single-file outputs use pal.cli.atomic_write.

Crash tests: PAL_CRASH_AT=<label>:<point>[:<n>] makes the process SIGKILL itself the n-th time (default 1st) it
reaches that point of a commit labelled <label>; the points are `crash_point` calls (see POINTS).
"""
import os
import shutil
import signal
from contextlib import contextmanager

CRASH_ENV = "PAL_CRASH_AT"
# the boundaries of one commit: after the first file of the new set, when it is complete, between the two
# renames, after the swap (old set not yet removed)
POINTS = ("partial", "complete", "old_moved", "swapped")
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


def recover(final_dir):
    """Bring `final_dir` back to its last committed set after a kill, and remove stray temporary folders."""
    tmp, old = side_paths(final_dir)
    if os.path.isdir(old) and not os.path.exists(final_dir):
        os.rename(old, final_dir)  # killed between the two renames: the old set is complete, the new one not in place
    for stray in (tmp, old):
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
