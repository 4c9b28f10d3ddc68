"""palkit: the suite's infrastructure, independent of any model (pal, persona_extractor, metric and human_eval use it).

- errors and command lines: UserError, run_main, ArgumentParser, resolve_device (cli.py); the entry scripts' first
  import, which says how to run them outside the project's environment (entry.py); shared options (options.py);
- argument types (argtypes.py), path checks (paths.py), safe loaders of user files (loaders.py), model folders
  (model_files.py), model names that may be hub names: local folder, hub cache, the hub asked once (hub.py);
- atomic and sealed writes of files and folders (atomic.py);
- the training engine: run position, optimizer step, resumable state, DDP, logs (engine.py);
- run folders: a run's recorded arguments at inference and on --resume (run_folder.py);
- serving a web app with waitress until Ctrl-C (serving.py).
"""
