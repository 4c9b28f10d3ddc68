"""The persona extractor's tiny BART and (context, persona) CSV pairs."""
import pandas as pd

from helpers.paths import SHARED


PERSONAS = ["i like cats.", "i am a nurse.", "i run marathons.", "i have two kids.", "i love pizza.",
            "my dog is old.", "i work at a bank.", "i play the guitar."]


def write_pairs(path, n, offset=0):
    rows = []
    for i in range(n):
        a, b = PERSONAS[(i + offset) % 8], PERSONAS[(i + offset + 3) % 8]
        rows.append({"context": f"hi <sep> so {a[:-1]} <sep> yes and {b[:-1]} </s>",
                     "persona": f"{a} <persona> {b} </s>"})
    pd.DataFrame(rows).to_csv(path)
    return str(path)


def make_tiny_bart(out, seed=0):
    """Random tiny BART with the real BART vocabulary when ../shared has it, else the tiny byte-level one."""
    from persona_extractor.tiny_bart import make_tiny_bart_dir
    real = SHARED / "models" / "bart-base"
    return make_tiny_bart_dir(str(out), seed=seed, tokenizer_dir=str(real) if real.is_dir() else None)


def make_pair_files(folder):
    """train/valid/test CSVs of (context, persona) pairs under folder."""
    return {"train": write_pairs(folder / "train.csv", 32), "valid": write_pairs(folder / "valid.csv", 8, offset=1),
            "test": write_pairs(folder / "test.csv", 8, offset=2)}
