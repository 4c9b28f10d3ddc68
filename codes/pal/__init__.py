"""PAL: persona-augmented, strategy-conditioned BlenderBot-small (Cheng et al., Findings of ACL 2023).

Library code behind the scripts in codes/: configuration and tokenizer (config.py), featurization and
batching (inputter.py), the model family (model.py), contrastive decoding (generation.py), and tiny
random stand-ins for tests and the demo (tiny.py).
"""
