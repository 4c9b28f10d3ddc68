"""PAL: persona-augmented, strategy-conditioned BlenderBot-small (Cheng et al., Findings of ACL 2023).

Library code behind the scripts in codes/ (README "Architecture" maps paper components to modules):
- data: dialogue files and persona strings (dialogues.py), the reformat's record conversion (reformat.py),
  featurization and batching (inputter.py; its straightforward reference form reference_featurization.py),
  prepared features (prepared.py);
- variants: each model variant declared once (variants.py: config, inputter, model class, persona, checkpoint keys,
  decoding alpha, Table 3 row, result-folder name); PAL's command-line options, each declared once (options.py);
- model: configuration and tokenizer (config.py), the model family (model.py), checkpoint I/O (checkpoint.py);
- decoding: the options (decoding.py), contrastive decoding (generation.py), beam search (beam_search.py), the chat
  session (chat.py);
- training: PAL's hooks on the engine of palkit and their options (training.py), the transformers-4.x AdamW and its
  options (optim.py);
- outputs: result folders (results.py); tiny random stand-ins for tests and the demo (tiny.py).
Infrastructure (errors, command lines, validation, atomic writes, the engine, run folders) is in palkit.
"""
