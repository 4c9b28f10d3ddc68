from palkit.cli import run_main

from human_eval.serve import main

run_main(main)
