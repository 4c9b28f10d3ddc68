"""Human evaluation in the browser: ESConv's pairwise protocol (live chat or static replies), stored in SQLite.

    RUN/python -m human_eval --system name=pal,config=strat,checkpoint=RUN/epoch-1.bin --system ... [--mode static]
    RUN/python -m human_eval.admin --db DB add NAME # a per-annotator access link
    RUN/python -m human_eval.analyze DB             # win/tie/loss, sign tests, agreement, table and chart
"""
