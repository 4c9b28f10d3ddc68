"""RUN/python -m auto_eval {cards,run,static,judge,validate} ... (auto_eval.cli)."""
from palkit.cli import run_main

from auto_eval.cli import main

run_main(main)
