"""Fine-tuning loop of the persona extractor in plain PyTorch (train_bart.py is its command line).

What it reproduces from the authors' PyTorch Lightning 1.x script (SPEC "Stage 1"):
- inputs and targets tokenized to at most 128 tokens each (their slow tokenizer's ids, see extractor.encode_texts),
  target padding ignored by the loss; the model's mean token cross-entropy is the loss;
- AdamW (torch defaults besides the learning rate, so weight decay 0.01 on every parameter), linear schedule with
  100 warmup steps over (rows // batch_size + 1) * epochs steps, no gradient clipping;
- shuffled batches of 16, up to 10 epochs;
- validation 4 times per epoch as Lightning's val_check_interval=0.25 does it: every int(batches_per_epoch * 0.25)
  batches (so 5 times when that division leaves enough over); validation loss = batch-size-weighted mean of the
  per-batch losses, as Lightning averages a logged value;
- the checkpoint with the lowest validation loss is kept (`best/`), and training stops after 5 validations in a
  row without a strictly lower loss (EarlyStopping(patience=5)).
Differences, all without effect on the numbers: batches are padded to their longest member instead of to 128
(padding is masked in the encoder and ignored by the loss); checkpoints are plain `save_pretrained` folders.

Output folder:
  best/             model + tokenizer (with <persona>, <sep>) of the lowest validation loss
  last/             model + tokenizer + trainer_state.pt: optimizer, scheduler, position, RNG, best loss, patience
  train_log.csv     one row per validation: epoch, step, train_loss, val_loss, best_val_loss, improved, ...
  args.json, results.json (best validation loss and step, test loss of best/ when a test file is given)
`resume=True` continues from last/ and gives the same weights as an uninterrupted run: the batch order of an
epoch comes from a generator seeded with (seed, epoch), and the global RNG state (dropout) is restored.
"""
import csv
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field

from extractor import UserError, encode_texts, load_tokenizer_and_model, resolve_device
from pal.cli import atomic_write, write_json

LOG_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "best_val_loss", "improved", "bad_evals", "lr",
               "elapsed_s"]
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainConfig:
    train_file: str
    valid_file: str
    output_dir: str
    model_name_or_path: str = "facebook/bart-large-cnn"
    test_file: str = None
    max_source_length: int = 128
    max_target_length: int = 128
    learning_rate: float = 1e-5
    train_batch_size: int = 16
    eval_batch_size: int = 16
    warmup_steps: int = 100
    num_epochs: int = 10
    val_check_interval: float = 0.25
    patience: int = 5
    seed: int = 42
    max_steps: int = None  # stop (resumably) after this many optimizer steps; for smoke runs
    device: str = None
    resume: bool = False
    overwrite_output_dir: bool = False
    progress: bool = True


@dataclass
class TrainState:
    """Everything besides weights/optimizer/scheduler that a resumed run needs to continue identically."""
    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    best_val_loss: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    train_loss_sum: float = 0.0  # since the last validation, for the log
    train_loss_count: int = 0
    stopped_early: bool = False
    finished: bool = False
    elapsed_s: float = 0.0
    fingerprint: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------- data

def read_pairs(path):
    """(contexts, personas) of a CSV with `context` and `persona` columns (extra columns are ignored)."""
    import pandas as pd
    if not os.path.isfile(path):
        split = os.path.splitext(os.path.basename(path))[0]
        raise UserError(f"{path}: no such file; persona_extractor/process_bart_df.py (RUN/prepare_persona_data.sh) "
                        f"writes it only when the PersonaChat folder holds {split}_both_original.txt (ParlAI "
                        f"ConvAI2's {split} split): add that file and rerun it")
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise UserError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})")
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


def encode_pairs(tokenizer, path, config):
    contexts, personas = read_pairs(path)
    return EncodedPairs(encode_texts(tokenizer, contexts, config.max_source_length),
                        encode_texts(tokenizer, personas, config.max_target_length))


def collate(pairs, indices, pad_id):
    """Model inputs for the rows `indices`: right-padded sources with mask, labels padded with -100."""
    import torch
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
    import torch
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


def to_device(batch, device):
    return {k: v.to(device) for k, v in batch.items()}


def evaluate_loss(model, pairs, batch_size, pad_id, device, desc="validating", progress=True):
    """Batch-size-weighted mean of the per-batch mean token losses (what Lightning reports as val_loss)."""
    import torch
    from tqdm import tqdm
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    starts = range(0, len(pairs), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=desc, leave=False, disable=not progress):
            indices = list(range(start, min(start + batch_size, len(pairs))))
            loss = model(**to_device(collate(pairs, indices, pad_id), device)).loss
            total += loss.item() * len(indices)
            count += len(indices)
    model.train(was_training)
    return total / count


# ----------------------------------------------------------------------------------------- checkpoints

def replace_dir(tmp_dir, final_dir):
    """Move a completely written folder into place (the previous one is removed only afterwards)."""
    old = final_dir + ".old"
    if os.path.exists(old):
        shutil.rmtree(old)
    if os.path.exists(final_dir):
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if os.path.exists(old):
        shutil.rmtree(old)


def save_model_dir(model, tokenizer, final_dir, extra=None):
    """save_pretrained into a fresh folder, then swap it in; `extra(tmp_dir)` may add files before the swap."""
    tmp = final_dir + ".tmp"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if extra is not None:
        extra(tmp)
    replace_dir(tmp, final_dir)


def rng_snapshot():
    import random
    import torch
    snapshot = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        snapshot["cuda"] = torch.cuda.get_rng_state_all()
    return snapshot


def restore_rng(snapshot):
    import random
    import torch
    torch.set_rng_state(snapshot["torch"])
    random.setstate(snapshot["python"])
    if "cuda" in snapshot and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(snapshot["cuda"])


def save_last(out_dir, model, tokenizer, optimizer, scheduler, state):
    import torch

    def write_state(tmp_dir):
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "state": asdict(state), "rng": rng_snapshot()}, os.path.join(tmp_dir, STATE_FILE))

    save_model_dir(model, tokenizer, os.path.join(out_dir, "last"), extra=write_state)


def load_last(out_dir):
    import torch
    path = os.path.join(out_dir, "last", STATE_FILE)
    if not os.path.isfile(path):
        raise UserError(f"--resume: {path} not found; nothing to resume in {out_dir} (drop --resume to start)")
    return torch.load(path, map_location="cpu", weights_only=False)


# ------------------------------------------------------------------------------------------------ logging

class CsvLog:
    """train_log.csv, one row per validation; on resume, rows after the saved step are dropped."""

    def __init__(self, path, keep_until_step=None):
        self.path = path
        rows = []
        if keep_until_step is not None and os.path.isfile(path):
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until_step]
        with atomic_write(path) as f:
            writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)

    def append(self, row):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(row)


# ---------------------------------------------------------------------------------------------- training

def fingerprint(config, num_train_rows):
    """Settings a resumed run must share with the run it continues."""
    keys = ("learning_rate", "train_batch_size", "warmup_steps", "num_epochs", "seed", "val_check_interval",
            "patience", "max_source_length", "max_target_length")
    return {**{k: getattr(config, k) for k in keys}, "num_train_rows": num_train_rows}


def check_settings(config):
    for name in ("train_batch_size", "eval_batch_size", "num_epochs", "patience", "max_source_length",
                 "max_target_length"):
        if getattr(config, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if not 0 < config.val_check_interval <= 1:
        raise UserError("--val_check_interval must be in (0, 1] (a fraction of an epoch)")
    if config.learning_rate < 0 or config.warmup_steps < 0:
        raise UserError("--learning_rate and --warmup_steps must not be negative")


def check_output_dir(config):
    """Refuse to mix a new run into a folder that holds one (before anything is loaded or written)."""
    has_run = os.path.exists(os.path.join(config.output_dir, "train_log.csv"))
    if has_run and not (config.resume or config.overwrite_output_dir):
        raise UserError(f"--output_dir {config.output_dir} already holds a run (train_log.csv); pass --resume to "
                        f"continue it or --overwrite_output_dir to start over")


def prepare_output_dir(config):
    """Create the folder (only once model and data loaded fine); --overwrite_output_dir clears a previous run."""
    if config.overwrite_output_dir and not config.resume:
        for name in ("best", "last", "train_log.csv", "results.json"):
            path = os.path.join(config.output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(config.output_dir, exist_ok=True)


class Trainer:
    def __init__(self, config):
        import torch
        from transformers import get_linear_schedule_with_warmup
        self.config = config
        check_settings(config)
        check_output_dir(config)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        model_path = os.path.join(config.output_dir, "last") if config.resume else config.model_name_or_path
        if config.resume:
            saved = load_last(config.output_dir)
        self.tokenizer, self.model = load_tokenizer_and_model(model_path)
        self.model.to(self.device).train()
        self.pad_id = self.tokenizer.pad_token_id
        self.train = encode_pairs(self.tokenizer, config.train_file, config)
        self.valid = encode_pairs(self.tokenizer, config.valid_file, config)
        self.test = encode_pairs(self.tokenizer, config.test_file, config) if config.test_file else None
        self.num_batches = batches_per_epoch(len(self.train), config.train_batch_size)
        self.every = validation_every(self.num_batches, config.val_check_interval)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate)
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, num_warmup_steps=config.warmup_steps,
            num_training_steps=total_training_steps(len(self.train), config.train_batch_size, config.num_epochs))
        self.state = TrainState(fingerprint=fingerprint(config, len(self.train)))
        if config.resume:
            self._restore(saved)
        prepare_output_dir(config)
        self.log = CsvLog(os.path.join(config.output_dir, "train_log.csv"),
                          keep_until_step=self.state.step if config.resume else None)
        self.started = time.time() - self.state.elapsed_s
        write_json(os.path.join(config.output_dir, "args.json"), asdict(config))

    def _restore(self, saved):
        state = TrainState(**saved["state"])
        if state.fingerprint != self.state.fingerprint:
            changed = sorted(k for k in self.state.fingerprint
                             if state.fingerprint.get(k) != self.state.fingerprint[k])
            raise UserError(f"--resume: the saved run used different settings ({', '.join(changed)}); "
                            f"resume with the same arguments or start a new --output_dir")
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        restore_rng(saved["rng"])
        self.state = state

    # one optimizer step on the batch at position `b` of `order`
    def _step(self, order, b):
        bs = self.config.train_batch_size
        batch = collate(self.train, order[b * bs:(b + 1) * bs], self.pad_id)
        loss = self.model(**to_device(batch, self.device)).loss
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        self.state.train_loss_sum += loss.item()
        self.state.train_loss_count += 1
        return loss.item()

    def _validate(self):
        s, c = self.state, self.config
        val_loss = evaluate_loss(self.model, self.valid, c.eval_batch_size, self.pad_id, self.device,
                                 progress=c.progress)
        improved = val_loss < s.best_val_loss
        if improved:
            s.best_val_loss, s.best_step, s.bad_evals = val_loss, s.step, 0
            save_model_dir(self.model, self.tokenizer, os.path.join(c.output_dir, "best"))
        else:
            s.bad_evals += 1
        train_loss = s.train_loss_sum / s.train_loss_count if s.train_loss_count else float("nan")
        s.train_loss_sum, s.train_loss_count = 0.0, 0
        s.elapsed_s = time.time() - self.started
        self.log.append({"epoch": s.epoch, "step": s.step, "train_loss": f"{train_loss:.6f}",
                         "val_loss": f"{val_loss:.6f}", "best_val_loss": f"{s.best_val_loss:.6f}",
                         "improved": int(improved), "bad_evals": s.bad_evals,
                         "lr": f"{self.scheduler.get_last_lr()[0]:.3e}", "elapsed_s": f"{s.elapsed_s:.1f}"})
        if s.bad_evals >= c.patience:
            s.stopped_early = True
        return val_loss

    def _save_last(self):
        self.state.elapsed_s = time.time() - self.started
        save_last(self.config.output_dir, self.model, self.tokenizer, self.optimizer, self.scheduler, self.state)

    def run(self):
        """Train until the epochs run out, early stopping triggers, or max_steps is reached."""
        from tqdm import tqdm
        s, c = self.state, self.config
        if s.finished:
            print(f"{c.output_dir}: this run already finished (best val loss {s.best_val_loss:.4f} at step "
                  f"{s.best_step})")
            return s
        while s.epoch < c.num_epochs and not s.stopped_early:
            order = epoch_order(len(self.train), c.seed, s.epoch)
            bar = tqdm(total=self.num_batches, initial=s.batch_in_epoch, desc=f"epoch {s.epoch}",
                       disable=not c.progress)
            while s.batch_in_epoch < self.num_batches:
                loss = self._step(order, s.batch_in_epoch)
                s.batch_in_epoch += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}", best=f"{s.best_val_loss:.4f}")
                validated = s.batch_in_epoch % self.every == 0
                if validated:
                    self._validate()
                epoch_done = s.batch_in_epoch == self.num_batches
                if epoch_done:
                    s.epoch, s.batch_in_epoch = s.epoch + 1, 0
                if s.stopped_early:
                    break
                if c.max_steps is not None and s.step >= c.max_steps:
                    bar.close()
                    self._save_last()
                    print(f"stopped at step {s.step} (--max_steps); continue with --resume")
                    return s
                if validated:
                    self._save_last()  # the point a later --resume continues from
                if epoch_done:
                    break
            bar.close()
        s.finished = True
        self._save_last()
        self._write_results()
        return s

    def _write_results(self):
        s, c = self.state, self.config
        results = {"best_val_loss": s.best_val_loss, "best_step": s.best_step, "steps": s.step,
                   "stopped_early": s.stopped_early, "best_dir": os.path.join(c.output_dir, "best")}
        if self.test is not None:
            _, best = load_tokenizer_and_model(os.path.join(c.output_dir, "best"))
            results["test_loss"] = evaluate_loss(best.to(self.device), self.test, c.eval_batch_size, self.pad_id,
                                                 self.device, desc="testing", progress=c.progress)
        write_json(os.path.join(c.output_dir, "results.json"), results)
        print(json.dumps(results))


def train(config):
    """Run (or resume) a training; returns the final TrainState."""
    return Trainer(config).run()
