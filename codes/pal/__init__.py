"""PAL: persona-augmented, strategy-conditioned BlenderBot-small (Cheng et al., Findings of ACL 2023).

Library code behind the scripts in codes/ (README "Architecture" maps paper components to modules):
- data: dialogue files and persona strings (dialogues.py), the reformat's record conversion (reformat.py),
  featurization and batching (inputter.py; its straightforward reference form reference_featurization.py),
  prepared features (prepared.py);
- model: configuration and tokenizer (config.py), the model family (model.py), checkpoint I/O (checkpoint.py);
- decoding: contrastive decoding (generation.py), beam search (beam_search.py), the chat session (chat.py);
- training: the one engine (engine.py), PAL's training hooks (training.py), the transformers-4.x AdamW (optim.py);
- outputs: multi-file commits (atomic.py), result folders (results.py), run folders (run_folder.py);
- plumbing: input validation (checks.py), command lines and one-line errors (cli.py), tiny random stand-ins for
  tests and the demo (tiny.py).
"""
