"""Builders shared by the test modules: plain functions and constants, no fixtures (those live in conftest.py).

paths: the checkout, ../shared and entry scripts; pal_models: tiny dialogues, random PAL models and batches;
training / infer / extractor: the tiny runs several modules start from; bad_input: running a script and asserting
its one-line rejection; crash: killed runs; metric_files: gen.json records; human_eval: the study's inputs.
"""
