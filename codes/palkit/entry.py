"""The first import of every entry script: outside the project's environment it says in one line how to run it.

A plain `python codes/train.py` (no torch, the project's packages not installed) would otherwise end in a traceback
about a missing module; this prints `error: this is not the project's environment (no torch or pal here): run it as
RUN/python codes/train.py ...` (the launcher sets up .venv: palkit.cli.launcher) and exits 1. It reads only the
standard library, and palkit is reachable from a script in codes/ even outside the environment (the script's folder
is on the search path), so it runs before anything that could fail. The scripts of persona_extractor/ and
codes/_reformat/, whose folders do not hold palkit, import it in a try block whose except says the same line.
"""
import importlib.util
import sys

from .cli import launcher

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("pal") is None:
    sys.exit(f"error: this is not the project's environment (no torch or pal here): run it as  {launcher()} "
             f"{' '.join(sys.argv)}")
