"""The training engine shared by codes/train.py (PAL) and persona_extractor/train_bart.py (the extractor).

Nothing here is specific to a model. The engine owns the run position, the optimizer step (autocast, gradient
accumulation under DDP, GradScaler, clipping, scheduler), the resumable state, the CSV logs, processes/devices and the
progress bar. A task (the `Task` protocol: its hooks are the methods `Engine.fit` calls) supplies what differs;
it is built after `Engine.resume`, from the task state that returns. The engine names no command-line option: what
cannot be resumed is a `ResumeError`, which the scripts phrase.

Resumable state: one folder (`state_dir`) holding engine_state.pt (weights through save_model, optimizer, scheduler,
scaler, position, the task's state, the settings) and rank_state_<r>.pt (each process' RNG states), written into a
fresh folder and committed as one unit (palkit.atomic), so a kill at any instant leaves the previous state or the new.
"""
import csv
import os
import random
import signal
import sys
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from palkit.atomic import atomic_write, commit, crash_point, fresh_dir, recover
from palkit.loaders import load_torch_state
from palkit.model_files import state_dict_mismatches
from palkit.cli import resolve_device

ENGINE_STATE = "engine_state.pt"
DAMAGED_HINT = "the saved training state is damaged: start the run again (not resumed, or in a new folder)"


class Task(Protocol):
    """What a training run adds to the engine: the hooks `Engine.fit` calls, in the order of a step."""

    def epoch_plan(self, engine) -> list:
        """One entry per optimizer step of the epoch (e.g. the example indices of the step)."""

    def micro_batches(self, entry) -> list:
        """This process' micro-batches of that step (CPU tensors)."""

    def loss(self, model, batch, n_micro):
        """(loss to backpropagate, detached float64 device tensor of statistics to sum over processes)."""

    def on_step_end(self, engine, stats, lr) -> bool:
        """True when this is a point to save the state (a validation, every N steps)."""

    def on_epoch_end(self, engine, complete) -> None:
        """Validation/checkpoints at the end of an epoch (or of a run stopped mid-epoch)."""

    def should_stop(self) -> bool:
        """Early stopping."""
        return False

    def state_dict(self) -> dict:
        """The task's own resumable values (picklable); `Engine.resume` returns them to build the task again."""

    def save_model(self, model, directory) -> None:
        """How the weights go into the state folder: by default model.pt, a state_dict."""
        save_state_dict(model, directory)


class ResumeError(Exception):
    """A saved state that cannot be resumed; the message names no command-line option (the scripts add them)."""


class NoSavedState(ResumeError):
    """Nothing to resume in the state folder."""


class SettingsDiffer(ResumeError):
    """The run was started with other settings."""


class ProcessCountDiffers(ResumeError):
    """The run was saved by another number of processes."""


class ModelDiffers(ResumeError):
    """The model built now does not have the saved weights' keys and shapes."""


# ------------------------------------------------------------------------------------------- processes and devices

@dataclass
class Runtime:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    distributed: bool = False

    @property
    def is_main(self):
        return self.rank == 0

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def sum(self, values):
        """Sum over processes: a tensor in place, or a list of numbers (returned as they are with one process)."""
        if not self.distributed:
            return values
        if torch.is_tensor(values):
            dist.all_reduce(values)
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def from_main(self, obj):
        """rank 0's value of a picklable object on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def share(self, items):
        """This process' contiguous part of a global batch (the first processes take one more when it is uneven)."""
        per = -(-len(items) // self.world_size)
        return items[self.rank * per:(self.rank + 1) * per]

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def start_runtime(device_name):
    """One process, or torchrun's (WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    device = resolve_device(device_name)
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Runtime(device=device)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Runtime(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device, distributed=True)


def to_device(batch, device):
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def autocast_context(precision, device):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def seed_everything(seed):
    """The python, numpy and torch (CPU and every GPU) generators, as transformers.set_seed (the authors' call)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


def rng_states(device):
    states = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(states, device):
    torch.set_rng_state(states["torch"])
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    if "cuda" in states and device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], device)


# ------------------------------------------------------------------------------------------- logs

class CsvLog:
    """Rows appended to a CSV with a header (open only on rank 0); on resume, rows after the resumed step go."""

    def __init__(self, path, columns, step_column, keep_until_step=None):
        rows = []
        if keep_until_step is not None and os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r[step_column]) <= keep_until_step]
        with atomic_write(path) as f:
            writer = csv.DictWriter(f, columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        self.file = open(path, "a", newline="", encoding="utf-8", buffering=1)
        self.writer = csv.DictWriter(self.file, columns, lineterminator="\n")

    def write(self, **row):
        self.writer.writerow(row)

    def close(self):
        self.file.close()


# ------------------------------------------------------------------------------------------- the engine

@dataclass
class Position:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0


def differing_settings(saved, current):
    return [f"{k}: run {saved.get(k)!r}, now {current[k]!r}" for k in current if saved.get(k) != current[k]]


class Engine:
    """Runs a task's optimizer steps over epochs; saves and resumes the whole run state (see the module docstring).

    scheduler_interval: "step" steps the scheduler after every optimizer step, "epoch" once at the end of each epoch
    (PyTorch Lightning 1.x's default for a scheduler returned without an interval).
    """

    def __init__(self, model, optimizer, scheduler, runtime, state_dir, settings, resume_command, precision="fp32",
                 max_grad_norm=None, scheduler_interval="step", progress=True, label="training_state"):
        self.raw_model = model
        self.model = model
        if runtime.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)
        self.optimizer, self.scheduler, self.runtime = optimizer, scheduler, runtime
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.state_dir, self.settings, self.label = state_dir, settings, label
        self.precision, self.max_grad_norm = precision, max_grad_norm
        self.scheduler_interval, self.progress = scheduler_interval, progress
        self.position = Position()
        self.saved_step = None  # global_step of the last committed state (what resume_command continues from)
        self.resume_command = resume_command  # the command line that continues the run (said on Ctrl-C)
        self.bar = None
        self.resumed = False
        self.logs = []

    def open_log(self, path, columns, step_column):
        """A CsvLog on rank 0 (None elsewhere); a resumed run keeps its rows up to the resumed step."""
        if not self.runtime.is_main:
            return None
        log = CsvLog(path, columns, step_column, self.position.global_step if self.resumed else None)
        self.logs.append(log)
        return log

    def close(self):
        """Close the logs and leave the process group."""
        for log in self.logs:
            log.close()
        self.logs = []
        self.runtime.close()

    def autocast(self):
        return autocast_context(self.precision, self.runtime.device)

    # -------------------------------------------------------------------------------------- one optimizer step
    def step(self, task, micro_batches):
        """Forward/backward over this process' micro-batches, clip, step. Returns (summed statistics, lr)."""
        stats = None
        for i, batch in enumerate(micro_batches):
            batch = to_device(batch, self.runtime.device)
            last = i == len(micro_batches) - 1
            with (nullcontext() if last or not self.runtime.distributed else self.model.no_sync()):
                with self.autocast():
                    loss, batch_stats = task.loss(self.model, batch, len(micro_batches))
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            stats = batch_stats if stats is None else stats + batch_stats
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if self.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.scheduler_interval == "step":
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return stats, lr

    # -------------------------------------------------------------------------------------- the loop
    def fit(self, task, num_epochs, last_step):
        """Train until num_epochs are done, last_step steps are taken, or the task stops; saves along the way.

        Ctrl-C (KeyboardInterrupt) is re-raised with what interrupted_message() says (palkit.cli.run_main prints it)."""
        if self.runtime.is_main and self.progress:
            self.bar = tqdm(total=last_step, initial=self.position.global_step, desc="training", unit="step",
                            dynamic_ncols=True)
        try:
            self._fit(task, num_epochs, last_step)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(self.interrupted_message() if self.runtime.is_main else "") from None
        finally:
            if self.bar:
                self.bar.close()
                self.bar = None

    def interrupted_message(self):
        """Where an interrupted run stands: the step it resumes from (its last committed state) and the command."""
        p = self.position
        if self.saved_step is None:
            return (f"at step {p.global_step}, before the run's first saved state ({self.state_dir}): nothing to "
                    "resume; start the run again")
        return (f"at step {p.global_step}; the run resumes from step {self.saved_step} (its last saved state, "
                f"{self.state_dir}) with: {self.resume_command}")

    def _fit(self, task, num_epochs, last_step):
        p = self.position
        while p.epoch < num_epochs and p.global_step < last_step and not task.should_stop():
            plan = task.epoch_plan(self)
            while p.step_in_epoch < len(plan) and p.global_step < last_step:
                stats, lr = self.step(task, task.micro_batches(plan[p.step_in_epoch]))
                p.step_in_epoch += 1
                p.global_step += 1
                if self.bar:
                    self.bar.update(1)
                save_point = task.on_step_end(self, stats, lr)
                if p.step_in_epoch == len(plan) or task.should_stop():
                    break
                if save_point and p.global_step < last_step:
                    self.save(task)
            complete = p.step_in_epoch == len(plan)
            task.on_epoch_end(self, complete)
            if complete:
                if self.scheduler_interval == "epoch":
                    self.scheduler.step()
                p.epoch, p.step_in_epoch = p.epoch + 1, 0
            if p.epoch < num_epochs and not task.should_stop():
                self.save(task)

    def progress_bar(self, total, desc, unit="batch"):
        """A bar with ETA for a loop inside training (validation), on rank 0 when progress bars are on."""
        return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                    disable=not (self.runtime.is_main and self.progress))

    # -------------------------------------------------------------------------------------- resumable state
    def save(self, task):
        """Commit the run state to state_dir as one unit (every process writes its RNG states).

        Ctrl-C waits for the commit to finish, so the step that the interrupted message names is the one on disk."""
        with sigint_deferred():
            self._save(task)
            self.saved_step = self.position.global_step

    def _save(self, task):
        runtime = self.runtime
        tmp = fresh_dir(self.state_dir) if runtime.is_main else None
        tmp = runtime.from_main(tmp)
        torch.save({"global_step": self.position.global_step, **rng_states(runtime.device)},
                   os.path.join(tmp, f"rank_state_{runtime.rank}.pt"))
        crash_point(self.label, "partial")
        runtime.barrier()
        if runtime.is_main:
            task.save_model(self.raw_model, tmp)
            torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict() if self.scaler else None,
                        "position": asdict(self.position), "task": task.state_dict(), "settings": self.settings,
                        "world_size": runtime.world_size}, os.path.join(tmp, ENGINE_STATE))
            commit(tmp, self.state_dir, self.label)
        runtime.barrier()

    def load_saved_weights(self, path):
        """The saved model weights; a model built with another shape (e.g. another pretrained folder's vocabulary)
        is a ModelDiffers, not a traceback."""
        weights = load_torch_state(path, DAMAGED_HINT)
        problems = state_dict_mismatches(self.raw_model, weights)
        if problems:
            raise ModelDiffers(f"the model built now does not match the saved one ({problems})")
        self.raw_model.load_state_dict(weights)

    def resume(self, load_model=True):
        """Restore everything save() wrote and return the task's saved state (to build the task from); a missing
        or foreign state is a ResumeError, a damaged file a one-line UserError naming it."""
        state = self.read_state()
        differing = differing_settings(state["settings"], self.settings)
        if differing:
            raise SettingsDiffer(f"settings differ from the saved run's ({'; '.join(differing)}); resume with the "
                                 "same arguments or start a new run")
        rank_path = os.path.join(self.state_dir, f"rank_state_{self.runtime.rank}.pt")
        if state["world_size"] != self.runtime.world_size or not os.path.isfile(rank_path):
            raise ProcessCountDiffers(f"saved by {state['world_size']} process(es), now {self.runtime.world_size}; "
                                      "resume with the same number of processes")
        rank_state = load_torch_state(rank_path, DAMAGED_HINT, weights_only=False)
        if load_model:
            self.load_saved_weights(os.path.join(self.state_dir, "model.pt"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler:
            self.scaler.load_state_dict(state["scaler"])
        self.position = Position(**state["position"])
        restore_rng(rank_state, self.runtime.device)
        self.resumed = True
        self.saved_step = self.position.global_step
        return state["task"]

    def read_state(self):
        path = os.path.join(self.state_dir, ENGINE_STATE)
        if self.runtime.is_main:
            recover(self.state_dir)  # a kill between the two renames of a commit: back to the last complete state
        self.runtime.barrier()
        if not os.path.isfile(path):
            raise NoSavedState(f"{path} not found; nothing to resume (start a new run)")
        return load_torch_state(path, DAMAGED_HINT, weights_only=False)


@contextmanager
def sigint_deferred():
    """Hold a SIGINT (Ctrl-C) that arrives inside the block and raise it as KeyboardInterrupt at its end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def save_state_dict(model, directory):
    """The default save_model: the weights as one state_dict (tied weights stay one storage)."""
    torch.save(model.state_dict(), os.path.join(directory, "model.pt"))


def note(runtime, message):
    if runtime.is_main:
        print(message, file=sys.stderr)
