"""The automatic evaluation: simulated help-seekers talk with each system, an LLM judge compares pairs, and the judge
is validated against ESConv's own help-seekers. Beside human_eval, whose study store, criteria and tasks it uses
(human_eval never imports it). `RUN/python -m auto_eval {cards,run,static,judge,validate}`,
`RUN/python -m auto_eval.analyze DB`; README "Automatic evaluation"."""
