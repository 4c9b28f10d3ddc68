"""The persona extractor's training data: the context/persona CSVs (process_bart_df.py), their token ids, batches
and the validation loss (the data half of extractor_training.py; docs/reproduction.md#persona-extractor)."""
import math
import os
from dataclasses import dataclass

import torch
from tqdm import tqdm

from palkit.cli import UserError
from palkit.engine import to_device
from persona_extractor.modeling import encode_texts


def read_csv_frame(path):
    """A CSV as a pandas frame of strings (empty cells stay ""), or a one-line UserError naming the file."""
    import pandas as pd  # lazy: not needed for --help
    try:
        return pd.read_csv(path, keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})")


def read_pairs(path):
    """(contexts, personas) of a CSV with `context` and `persona` columns (extra columns are ignored)."""
    if not os.path.isfile(path):
        split = os.path.splitext(os.path.basename(path))[0]
        raise UserError(f"{path}: no such file; persona_extractor/process_bart_df.py (RUN/prepare_persona_data.sh) "
                        f"writes it only when the PersonaChat folder holds {split}_both_original.txt (ParlAI "
                        f"ConvAI2's {split} split): add that file and rerun it")
    frame = read_csv_frame(path)
    missing = [c for c in ("context", "persona") if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing column(s) {', '.join(missing)}; expected context and persona")
    if len(frame) == 0:
        raise UserError(f"{path}: no rows")
    return frame["context"].tolist(), frame["persona"].tolist()


@dataclass
class EncodedPairs:
    sources: list
    targets: list

    def __len__(self):
        return len(self.sources)


def encode_pairs(tokenizer, source, config):
    """`source`: a CSV path, or its (contexts, personas) from read_pairs."""
    contexts, personas = read_pairs(source) if isinstance(source, (str, os.PathLike)) else source
    return EncodedPairs(encode_texts(tokenizer, contexts, config.max_source_length),
                        encode_texts(tokenizer, personas, config.max_target_length))


def collate(pairs, indices, pad_id):
    """Model inputs for the rows `indices`: right-padded sources with mask, labels padded with -100."""
    sources = [pairs.sources[i] for i in indices]
    targets = [pairs.targets[i] for i in indices]
    width, target_width = max(map(len, sources)), max(map(len, targets))
    input_ids = torch.full((len(indices), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(indices), width), dtype=torch.long)
    labels = torch.full((len(indices), target_width), -100, dtype=torch.long)
    for row, (src, tgt) in enumerate(zip(sources, targets)):
        input_ids[row, :len(src)] = torch.tensor(src)
        attention_mask[row, :len(src)] = 1
        labels[row, :len(tgt)] = torch.tensor(tgt)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def epoch_order(num_rows, seed, epoch):
    """The shuffled row order of one epoch; depends only on (seed, epoch), so a resumed run sees the same."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_rows, generator=generator).tolist()


def batches_per_epoch(num_rows, batch_size):
    return math.ceil(num_rows / batch_size)


def validation_every(num_batches, val_check_interval):
    """Lightning's val_check_batch for a fractional val_check_interval."""
    return max(1, int(num_batches * val_check_interval))


def total_training_steps(num_rows, batch_size, num_epochs):
    """The authors' schedule length: (rows // batch_size + 1) * epochs."""
    return (num_rows // batch_size + 1) * num_epochs


def evaluate_loss(model, pairs, batch_size, pad_id, device, desc="validating", progress=True):
    """Batch-size-weighted mean of the per-batch mean token losses (what Lightning reports as val_loss)."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: one synchronisation
    starts = range(0, len(pairs), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=desc, leave=False, disable=not progress):
            indices = list(range(start, min(start + batch_size, len(pairs))))
            loss = model(**to_device(collate(pairs, indices, pad_id), device)).loss
            total += loss.double() * len(indices)
    model.train(was_training)
    return float(total) / len(pairs)
