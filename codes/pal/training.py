"""What PAL training adds to the engine (palkit.engine): the authors' batch order, the loss and ppl, a log row per
optimizer step, epoch-N.bin and a validation after every epoch. codes/train.py is the command line."""
import math
import os
import sys
import time
from dataclasses import dataclass

import torch

from palkit.engine import Task, note, to_device
from .checkpoint import save_checkpoint
from .config import RELEASED
from .inputter import BucketBatchSampler, collate, validation_batches

BUCKET_FACTOR = 100  # the authors' bucket = 100 batches
TRAIN_LOG_COLUMNS = ["epoch", "global_step", "step", "loss", "ppl", "mean_loss", "mean_ppl", "lr",
                     "n_token_real", "n_token_total", "epoch_time"]
EVAL_LOG_COLUMNS = ["epoch", "global_step", "eval_loss", "eval_ppl", "eval_tokens", "eval_examples", "lr",
                    "checkpoint"]


@dataclass(frozen=True)
class TrainingOptions:
    """What the task reads of train.py's settings (docs/reproduction.md#training)."""
    gradient_accumulation_steps: int = RELEASED["gradient_accumulation_steps"]
    loss_averaging: str = "micro_batch"  # or "optimizer_step"
    eval_batch_size: int = RELEASED["eval_batch_size"]
    save_state_steps: int = 1000  # 0: the state only after each epoch


@dataclass
class TrainingData:
    """A run's examples: the training features and their sampler, the validation features (one list per dialogue)."""
    sampler: BucketBatchSampler
    features: list
    eval_features: list
    pad_id: int
    persona_in_batches: bool
    steps_per_epoch: int


@torch.no_grad()
def evaluate(engine, data, batch_size):
    """(loss, ppl, tokens, examples) over the validation file: total token loss / total label tokens."""
    model = engine.raw_model
    was_training = model.training
    model.eval()
    total_loss = total_tokens = torch.zeros((), dtype=torch.float64, device=engine.runtime.device)
    n_examples = 0
    with engine.progress_bar(sum(map(len, data.eval_features)), "validating", unit="example") as bar:
        for batch in validation_batches(data.eval_features, batch_size, data.pad_id, data.persona_in_batches):
            with engine.autocast():
                out = model(**to_device(batch, engine.runtime.device))
            total_loss = total_loss + out.loss_sum_per_example.double().sum()
            total_tokens = total_tokens + out.label_count.double().sum()
            n_examples += out.label_count.numel()
            bar.update(out.label_count.numel())
    model.train(was_training)
    loss = float(total_loss) / max(float(total_tokens), 1.0)
    return loss, math.exp(min(loss, 50.0)), int(total_tokens), n_examples


class PalTask(Task):
    """The engine's hooks for PAL (see the module docstring). `data.sampler` draws the global micro-batches (all
    processes; each takes its slice); `saved` is the state Engine.resume returned (None for a new run)."""

    def __init__(self, options, data, runtime, run_dir, train_log, eval_log, saved=None):
        self.options, self.data, self.runtime, self.run_dir = options, data, runtime, run_dir
        self.sampler = data.sampler
        self.train_log, self.eval_log = train_log, eval_log  # None on the processes other than rank 0
        saved = saved or {"sampler_rng": self.sampler.rng.getstate(), "micro_steps": 0, "counters": new_counters()}
        self.sampler_rng = saved["sampler_rng"]  # at the start of the current epoch
        self.micro_steps, self.counters = saved["micro_steps"], saved["counters"]
        self.next_epoch_rng = self.epoch_start = None  # set by epoch_plan
        self.step_tokens = self.step_inputs = self.n_micro = None  # the current step's counts (micro_batches)

    def state_dict(self):
        return {"sampler_rng": self.sampler_rng, "micro_steps": self.micro_steps, "counters": dict(self.counters)}

    def should_stop(self):
        return False

    def epoch_plan(self, engine):
        self.sampler.rng.setstate(self.sampler_rng)
        micro_batches = self.sampler.epoch_batches()
        self.next_epoch_rng = self.sampler.rng.getstate()
        if engine.position.step_in_epoch == 0:
            self.counters = new_counters()
        self.epoch_start = time.time() - self.counters["epoch_time"]
        gas = self.options.gradient_accumulation_steps
        return [micro_batches[s * gas:(s + 1) * gas] for s in range(self.data.steps_per_epoch)]

    def micro_batches(self, step):
        data = self.data
        own = [collate([data.features[j] for j in self.runtime.share(mb)], data.pad_id, data.persona_in_batches)
               for mb in step]
        # counts come from the CPU batches (no device synchronisation), summed over processes in one reduction
        self.step_tokens, *self.step_inputs = self.runtime.sum([
            float(sum(int(b["labels"].ne(-100).sum()) for b in own)),
            sum(float(b["input_ids"].ne(data.pad_id).sum()) for b in own),
            sum(float(b["input_ids"].numel()) for b in own), float(sum(len(b["input_ids"]) for b in own))])
        self.n_micro = len(own)
        return own

    def loss(self, model, batch, n_micro):
        out = model(**batch)
        if self.options.loss_averaging == "optimizer_step":
            # DDP averages over processes, hence * world_size: the sum over all tokens / all tokens of the step
            loss = out.loss_sum_per_example.sum() * self.runtime.world_size / self.step_tokens
        else:
            loss = out.loss / n_micro
        per_example = (out.loss_sum_per_example / out.label_count.clamp(min=1)).detach()
        stats = torch.stack([out.loss_sum_per_example.detach().sum().double(), out.loss.detach().double(),
                             per_example.sum().double()])
        return loss, stats

    def on_step_end(self, engine, stats, lr):
        # one synchronisation per step: the log has a row per step
        loss_sum, micro_mean_sum, example_mean_sum = self.runtime.sum(stats).tolist()
        real, total, n_examples = self.step_inputs
        if self.options.loss_averaging == "optimizer_step":
            loss = loss_sum / self.step_tokens
        else:
            loss = micro_mean_sum / (self.n_micro * self.runtime.world_size)
        # ppl as the authors' model reports it: exp of the mean over examples of each example's mean token loss
        ppl = math.exp(min(example_mean_sum / n_examples, 50.0))
        c, position = self.counters, engine.position
        self.micro_steps += self.n_micro
        c.update(loss_sum=c["loss_sum"] + loss, ppl_sum=c["ppl_sum"] + ppl, steps=c["steps"] + 1,
                 n_token_real=c["n_token_real"] + int(real), n_token_total=c["n_token_total"] + int(total),
                 epoch_time=time.time() - self.epoch_start)
        if self.train_log:
            self.train_log.write(epoch=position.epoch, global_step=position.global_step, step=self.micro_steps,
                                 loss=loss, ppl=ppl, mean_loss=c["loss_sum"] / c["steps"],
                                 mean_ppl=c["ppl_sum"] / c["steps"], lr=lr, n_token_real=c["n_token_real"],
                                 n_token_total=c["n_token_total"], epoch_time=round(c["epoch_time"], 3))
        if engine.bar:
            engine.bar.set_postfix(epoch=position.epoch, loss=f"{loss:.3f}", ppl=f"{ppl:.2f}")
        every = self.options.save_state_steps
        return bool(every) and position.global_step % every == 0

    def on_epoch_end(self, engine, complete):
        """epoch-N.bin and a validation (rank 0; the others wait)."""
        epoch, step = engine.position.epoch, engine.position.global_step
        if self.runtime.is_main:
            checkpoint = os.path.join(self.run_dir, f"epoch-{epoch}.bin")
            save_checkpoint(engine.raw_model, checkpoint)
            loss, ppl, tokens, examples = evaluate(engine, self.data, self.options.eval_batch_size)
            self.eval_log.write(epoch=epoch, global_step=step, eval_loss=loss, eval_ppl=ppl, eval_tokens=tokens,
                                eval_examples=examples, lr=engine.scheduler.get_last_lr()[0],
                                checkpoint=os.path.basename(checkpoint))
            message = f"epoch {epoch}: step {step}, validation loss {loss:.4f}, ppl {ppl:.3f} -> {checkpoint}"
            engine.bar.write(message, file=sys.stderr) if engine.bar else note(self.runtime, message)
        if complete:
            self.sampler_rng = self.next_epoch_rng
        self.runtime.barrier()


def new_counters():
    return {"loss_sum": 0.0, "ppl_sum": 0.0, "steps": 0, "n_token_real": 0, "n_token_total": 0, "epoch_time": 0.0}
