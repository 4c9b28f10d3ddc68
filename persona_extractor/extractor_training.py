"""The persona extractor's training on the shared engine (palkit.engine); train_bart.py is its command line.

It reproduces the authors' PyTorch Lightning 1.x run (docs/reproduction.md#persona-extractor): inputs and targets
cut to 128 tokens, AdamW lr 1e-5, batch 16, 100 warmup steps over (rows // batch_size + 1) * epochs steps, the
schedule stepped once per EPOCH as Lightning 1.x did (`scheduler_interval="step"` steps it per batch), validation
4 times per epoch, the lowest validation loss kept in `best/`, early stopping after 5 validations without a
strictly lower loss. Under torchrun each batch is split across the processes and the loss is the token mean over
the whole batch, so N processes take the steps one process takes; validation runs on the first process.

Output folder (each checkpoint folder is committed as one unit, palkit.atomic): best/ (model + tokenizer of the
lowest validation loss), last/ (model + tokenizer + the engine's state, saved at every validation, epoch end and
stop), train_log.csv (one row per validation), args.json, results.json. `resume=True` continues from last/ and
gives the same weights as an uninterrupted run (an epoch's batch order comes from a generator seeded with
(seed, epoch); the RNG states are restored).
"""
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from palkit.atomic import commit_dir, crash_point, recover, write_json
from palkit.cli import UserError
from palkit.engine import Engine, ResumeError, Task, note, seed_everything, start_runtime
from palkit.run_folder import resume_command
from persona_extractor.extractor_data import (batches_per_epoch, collate, encode_pairs, epoch_order, evaluate_loss,
                                              read_pairs, total_training_steps, validation_every)
from persona_extractor.modeling import load_tokenizer_and_model

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_bart.py")  # for the resume command

LOG_COLUMNS = ["epoch", "step", "train_loss", "val_loss", "best_val_loss", "improved", "bad_evals", "lr",
               "elapsed_s"]
SCHEDULER_INTERVALS = ("epoch", "step")


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
    scheduler_interval: str = "epoch"  # the authors' Lightning 1.x default; "step": the paper's description
    max_steps: int = None  # stop (resumably) after this many optimizer steps; for smoke runs
    device: str = None
    resume: bool = False
    overwrite_output_dir: bool = False
    progress: bool = True


@dataclass
class TrainState:
    """The extractor's own resumable values (the engine keeps epoch, batch and step)."""
    step: int = 0
    best_val_loss: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    train_loss_sum: float = 0.0  # since the last validation, for the log (a device tensor while training)
    train_loss_count: int = 0
    stopped_early: bool = False
    finished: bool = False
    elapsed_s: float = 0.0


# ---------------------------------------------------------------------------------------------- training

def settings(config, num_train_rows):
    """Settings a resumed run must share with the run it continues."""
    keys = ("learning_rate", "train_batch_size", "warmup_steps", "num_epochs", "seed", "val_check_interval",
            "patience", "max_source_length", "max_target_length", "scheduler_interval")
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
    if config.scheduler_interval not in SCHEDULER_INTERVALS:
        raise UserError(f"--scheduler_interval must be epoch or step, got {config.scheduler_interval!r}")


def check_output_dir(config):
    """Refuse to mix a new run into a folder that holds one (before anything is loaded or written)."""
    has_run = os.path.exists(os.path.join(config.output_dir, "train_log.csv"))
    if has_run and not (config.resume or config.overwrite_output_dir):
        raise UserError(f"--output_dir {config.output_dir} already holds a run (train_log.csv); pass --resume to "
                        f"continue it or --overwrite_output_dir to start over")
    for name in ("last", "best"):  # a kill while committing a checkpoint: back to its last complete version
        recover(os.path.join(config.output_dir, name))
    if config.resume and os.path.isfile(os.path.join(config.output_dir, "last", "trainer_state.pt")):
        raise UserError(f"--resume: {config.output_dir}/last was saved by an earlier train_bart.py (trainer_state.pt); "
                        f"finish it with that version or start a new --output_dir")


def prepare_output_dir(config):
    """Create the folder (only once model and data loaded fine); --overwrite_output_dir clears a previous run."""
    if config.overwrite_output_dir and not config.resume:
        for name in ("results.json", "best", "last", "train_log.csv"):  # results.json describes best/: first
            path = os.path.join(config.output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    os.makedirs(config.output_dir, exist_ok=True)


class ExtractorTask(Task):
    """The engine's hooks for the extractor: shuffled batches, validation at Lightning's points, best/, patience.
    `log`: the train log (None on the processes other than rank 0); `saved`: what Engine.resume returned."""

    def __init__(self, trainer, log, saved=None):
        self.t, self.runtime, self.config = trainer, trainer.runtime, trainer.config
        self.log = log
        self.state = TrainState(**saved) if saved else TrainState()
        self.started = time.time() - self.state.elapsed_s
        self.step_tokens = None  # the current batch's label tokens over all processes (micro_batches, DDP only)

    def state_dict(self):
        return {**asdict(self.state), "train_loss_sum": float(self.state.train_loss_sum)}

    def should_stop(self):
        return self.state.stopped_early

    def save_model(self, model, directory, label="last"):
        model.save_pretrained(directory)
        if label == "best":  # (last/'s "partial" point is the engine's, after the RNG states)
            crash_point(label, "partial")
        self.t.tokenizer.save_pretrained(directory)

    def epoch_plan(self, engine):
        order = epoch_order(len(self.t.train), self.config.seed, engine.position.epoch)
        bs = self.config.train_batch_size
        return [order[b * bs:(b + 1) * bs] for b in range(self.t.num_batches)]

    def micro_batches(self, rows):
        own, weight = self.runtime.share(rows), 1.0
        if not own:  # fewer rows than processes: a stand-in row with weight 0 keeps this process in DDP's step
            own, weight = rows[:1], 0.0
        batch = collate(self.t.train, own, self.t.pad_id)
        if self.runtime.distributed:
            self.step_tokens = self.runtime.sum([float(batch["labels"].ne(-100).sum()) * weight])[0]
        return [dict(batch, weight=weight)]

    def loss(self, model, batch, n_micro):
        weight = batch.pop("weight")
        out = model(**batch)
        if not self.runtime.distributed:
            return out.loss, out.loss.detach().double()
        # the token mean over the whole batch: DDP averages over processes, hence * world_size
        token_sum = F.cross_entropy(out.logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100,
                                    reduction="sum")
        loss = token_sum * weight * self.runtime.world_size / self.step_tokens
        return loss, loss.detach().double() / self.runtime.world_size  # summed over processes: the batch's mean

    def on_step_end(self, engine, stats, lr):
        s = self.state
        s.train_loss_sum = s.train_loss_sum + stats  # stays on the device until the next validation
        s.train_loss_count += 1
        s.step = engine.position.global_step
        validated = engine.position.step_in_epoch % self.t.every == 0
        if validated:
            self.validate(engine)
        return validated

    def on_epoch_end(self, engine, complete):
        pass  # validations happen at their batches

    def validate(self, engine):
        s, c, t = self.state, self.config, self.t
        train_loss_sum = float(self.runtime.sum(s.train_loss_sum)) if s.train_loss_count else 0.0
        if self.runtime.is_main:
            val_loss = evaluate_loss(t.model, t.valid, c.eval_batch_size, t.pad_id, self.runtime.device,
                                     progress=c.progress)
            improved = val_loss < s.best_val_loss
            if improved:
                s.best_val_loss, s.best_step, s.bad_evals = val_loss, s.step, 0
                with commit_dir(os.path.join(c.output_dir, "best"), "best") as tmp:
                    self.save_model(t.model, tmp, "best")
            else:
                s.bad_evals += 1
            train_loss = train_loss_sum / s.train_loss_count if s.train_loss_count else float("nan")
            s.elapsed_s = time.time() - self.started
            self.log.write(epoch=engine.position.epoch, step=s.step, train_loss=f"{train_loss:.6f}",
                           val_loss=f"{val_loss:.6f}", best_val_loss=f"{s.best_val_loss:.6f}",
                           improved=int(improved), bad_evals=s.bad_evals,
                           lr=f"{engine.scheduler.get_last_lr()[0]:.3e}", elapsed_s=f"{s.elapsed_s:.1f}")
            if engine.bar:
                engine.bar.set_postfix(val_loss=f"{val_loss:.4f}", best=f"{s.best_val_loss:.4f}")
        s.best_val_loss, s.best_step, s.bad_evals = self.runtime.from_main((s.best_val_loss, s.best_step,
                                                                              s.bad_evals))
        s.train_loss_sum, s.train_loss_count = 0.0, 0
        s.stopped_early = s.bad_evals >= c.patience


class Trainer:
    """Loads model and data, builds the engine; run() trains (or resumes) and returns the final TrainState."""

    def __init__(self, config):
        from transformers import get_linear_schedule_with_warmup  # lazy: seconds to import; --help needs none
        self.config = config
        check_settings(config)
        self.runtime = start_runtime(config.device)
        self.device = self.runtime.device
        if self.runtime.is_main:
            check_output_dir(config)
        self.runtime.barrier()
        seed_everything(config.seed)
        last = os.path.join(config.output_dir, "last")
        if config.resume and not os.path.isdir(last):
            started = os.path.exists(os.path.join(config.output_dir, "train_log.csv"))
            raise UserError(f"--resume: {last} not found; nothing to resume in {config.output_dir} " +
                            ("(the run stopped before its first save: start again with --overwrite_output_dir)"
                             if started else "(drop --resume to start)"))
        # the CSVs first: a missing or malformed file is one line before the model loads (minutes for BART-large)
        train, valid = read_pairs(config.train_file), read_pairs(config.valid_file)
        test = read_pairs(config.test_file) if config.test_file else None
        self.tokenizer, self.model = load_tokenizer_and_model(last if config.resume else config.model_name_or_path)
        self.model.to(self.device).train()
        self.pad_id = self.tokenizer.pad_token_id
        self.train = encode_pairs(self.tokenizer, train, config)
        self.valid = encode_pairs(self.tokenizer, valid, config)
        self.test = encode_pairs(self.tokenizer, test, config) if test else None
        self.num_batches = batches_per_epoch(len(self.train), config.train_batch_size)
        self.every = validation_every(self.num_batches, config.val_check_interval)
        optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.learning_rate)
        scheduler = get_linear_schedule_with_warmup(
            optimizer, num_warmup_steps=config.warmup_steps,
            num_training_steps=total_training_steps(len(self.train), config.train_batch_size, config.num_epochs))
        self.engine = Engine(self.model, optimizer, scheduler, self.runtime, last, settings(config, len(self.train)),
                             resume_command(TRAIN_SCRIPT, config.output_dir, self.runtime),
                             scheduler_interval=config.scheduler_interval, progress=config.progress, label="last")
        self.optimizer, self.scheduler = optimizer, scheduler
        saved = None
        if config.resume:
            try:
                saved = self.engine.resume(load_model=False)  # the weights were loaded from last/ above
            except ResumeError as e:
                raise UserError(f"--resume {last}: {e}")
        log = None
        if self.runtime.is_main:
            prepare_output_dir(config)
            log = self.engine.open_log(os.path.join(config.output_dir, "train_log.csv"), LOG_COLUMNS, "step")
            write_json(os.path.join(config.output_dir, "args.json"), asdict(config))
        self.task = ExtractorTask(self, log, saved)

    def run(self):
        """Train until the epochs run out, early stopping triggers, or max_steps is reached."""
        c = self.config
        try:
            if self.task.state.finished:
                s = self.task.state
                note(self.runtime, f"{c.output_dir}: this run already finished (best val loss "
                                   f"{s.best_val_loss:.4f} at step {s.best_step})")
            else:
                last_step = self.num_batches * c.num_epochs
                self.engine.fit(self.task, c.num_epochs, min(last_step, c.max_steps or last_step))
                s = self.task.state
                if not s.stopped_early and self.engine.position.epoch < c.num_epochs:
                    note(self.runtime, f"stopped at step {s.step} (--max_steps {c.max_steps}); continue with "
                                       f"{self.engine.resume_command} (to its end; --max_steps N: to step N)")
                    return s
                s.finished = True
                s.elapsed_s = time.time() - self.task.started
                self.engine.save(self.task)
            # (a run killed after its last save and before results.json gets it on --resume)
            if self.runtime.is_main and not os.path.isfile(os.path.join(c.output_dir, "results.json")):
                self._write_results()
            return s
        finally:
            self.engine.close()

    def _write_results(self):
        s, c = self.task.state, self.config
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
