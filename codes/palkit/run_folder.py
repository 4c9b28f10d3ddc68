"""A training run folder as the unit of work: infer.py and interact.py follow what was trained.

A run folder (codes/train.py's output, or the authors') holds args.json (the training arguments), config.json (the
model's transformers config) and epoch-N.bin checkpoints. Given a checkpoint inside it, or the folder itself (then
its last epoch, said in one line), `parse_with_run_folder` fills the arguments that describe the trained model
(config, inputter, pretrained tokenizer folder, input length, fusion options: the `keys` a script passes) from
args.json when they are not on the command line. An explicit argument still wins; a value that differs from the
run's is noted, except --config_name / --inputter_name, with which the checkpoint could not load (an error). What
was taken and what was overridden is kept in the parsed values' `run_folder`, which the scripts record in their
output folder. The functions here work on the parsed values as a dict (`vars(namespace)`), filled in place.
The trainers' `--resume RUN_DIR` uses the same mechanism through `parse_resume`: every recorded argument is taken,
and an explicit one that would change the run is refused (codes/train.py, persona_extractor/train_bart.py).
"""
import argparse
import os
import re
import sys
import zipfile

from .loaders import load_json
from .cli import UserError, launcher

ARGS_FILE = "args.json"
MODEL_CONFIG_FILE = "config.json"
MUST_MATCH = ("config_name", "inputter_name")  # a checkpoint only loads into the model it was trained as
EPOCH_FILE = re.compile(r"^epoch-(\d+)\.bin$")
CHECKPOINT_FIX = "drop --{key} or use the RUN script for {run_value}"
RESUME_FIX = "drop --{key}: a resumed run keeps its arguments (start a new run to change it)"


class _OnlyGiven(argparse.Namespace):
    """A namespace that answers every option's name, so argparse presets no default into it: what it holds after
    parsing is what the command line gave."""

    def __getattr__(self, name):
        if name.startswith("_"):  # argparse's own bookkeeping attributes
            raise AttributeError(name)
        return None


def explicit_dests(parser, argv):
    """The `dest` names of the options present in argv (as opposed to left at their defaults)."""
    return set(vars(parser.parse_args(argv, namespace=_OnlyGiven())))


def last_epoch_checkpoint(run_dir):
    """The epoch-N.bin with the highest N in run_dir (a UserError when there is none)."""
    epochs = sorted((int(m.group(1)), name) for name in os.listdir(run_dir) if (m := EPOCH_FILE.match(name)))
    if not epochs:
        raise UserError(f"{run_dir}: no epoch-N.bin in this folder; pass a run folder written by codes/train.py "
                        "or a checkpoint file")
    return os.path.join(run_dir, epochs[-1][1])


def resolve_checkpoint(path, given_by=None):
    """A checkpoint file as given; for a run folder, its last epoch (one note line on stderr). A file that is not a
    checkpoint is named as one before any model is built (`given_by`: the argument that named it, for the hint)."""
    if path is None:
        return path
    if not os.path.isdir(path):
        check_checkpoint_file(path, given_by)
        return path
    checkpoint = last_epoch_checkpoint(path)
    print(f"note: {path} is a run folder: using its last epoch, {os.path.basename(checkpoint)} (pass an "
          "epoch-N.bin to choose another, e.g. the one eval_log.csv favours)", file=sys.stderr)
    check_checkpoint_file(checkpoint, given_by)
    return checkpoint


def check_checkpoint_file(path, given_by=None):
    """An existing file must look like a checkpoint: a torch.save archive (zip), a legacy torch pickle or a
    .safetensors file. Only its framing is read; the weights are checked when they load (pal.checkpoint)."""
    if not os.path.isfile(path):
        return  # a missing file is the caller's one-line error
    with open(path, "rb") as f:
        head = f.read(512)
    if path.endswith(".safetensors") or head[:1] == b"\x80" or zipfile.is_zipfile(path):
        return
    to = f"give {given_by} " if given_by else "give "
    raise UserError(f"{path}: not a checkpoint ({_not_a_checkpoint(head)}: not a readable torch file); {to}an "
                    "epoch-N.bin written by codes/train.py (or the authors' codes), or its run folder")


def _not_a_checkpoint(head):
    """What the first bytes of a file that is not a checkpoint say it is."""
    if not head:
        return "an empty file"
    if head.startswith(b"PK"):
        return "a truncated torch.save archive"
    try:
        head[:-3].decode("utf-8")  # (a character cut at the end of the block is still text)
    except UnicodeDecodeError:
        return "not written by torch.save"
    return "not written by torch.save" if b"\0" in head else "a text file"


def read_run_args(run_dir):
    """args.json of run_dir as a dict, or None when the folder has none."""
    path = os.path.join(run_dir, ARGS_FILE)
    if not os.path.isfile(path):
        return None
    return load_json(path, expect=dict, hint="restore it from the run, or remove it and pass every argument")


def check_recorded_pretrained_path(value, args_file):
    """The run's pretrained folder must still be there (it holds the tokenizer the checkpoint was trained with)."""
    looks_like_hub_name = value.count("/") == 1 and not value.startswith((".", "/"))
    if not os.path.isdir(value) and not looks_like_hub_name:
        raise UserError(f"{args_file}: pretrained_model_path {value} (the run's tokenizer and model config) is not "
                        "there any more; pass --pretrained_model_path DIR with the same tokenizer files "
                        "(or PRETRAINED_MODEL_PATH=DIR for the RUN scripts)")


def apply_run_folder(values, explicit, keys, checkpoint_attr="load_checkpoint"):
    """Fill `keys` of the parsed `values` from the checkpoint's run folder (see the module docstring)."""
    checkpoint = resolve_checkpoint(values[checkpoint_attr], f"--{checkpoint_attr}")
    values[checkpoint_attr] = checkpoint
    run_dir = os.path.dirname(os.path.abspath(checkpoint)) if checkpoint else None
    apply_run_dir(values, explicit, keys, run_dir, f"--{checkpoint_attr}")


def apply_run_dir(values, explicit, keys, run_dir, given_by, must_match=MUST_MATCH, conflict_fix=CHECKPOINT_FIX,
                  announce=True):
    """Fill `keys` of the parsed `values` (a dict, changed in place) from run_dir's args.json where argv did not give
    them (`explicit`: explicit_dests).

    `given_by` names the option that pointed at the run (for the error when a required key stays unset). An explicit
    value of a `must_match` key that differs from the run's is a UserError ending in `conflict_fix` (formatted with
    key and run_value). Sets values["run_folder"] ({path, taken, overridden, model_config}, or None without
    args.json). `announce`: one note line listing what was taken."""
    values["run_folder"] = None
    recorded = read_run_args(run_dir) if run_dir else None
    if recorded is not None:
        args_file = os.path.join(run_dir, ARGS_FILE)
        taken, overridden = take_recorded(values, explicit, keys, recorded, args_file, must_match, conflict_fix)
        model_config = os.path.join(run_dir, MODEL_CONFIG_FILE)
        values["run_folder"] = {"path": run_dir, "taken": taken, "overridden": overridden,
                                "model_config": model_config if os.path.isfile(model_config) else None}
        if taken and announce:
            print(f"note: from {args_file}: " + ", ".join(f"{k}={values[k]}" for k in taken) +
                  " (an explicit argument overrides)", file=sys.stderr)
    for key in MUST_MATCH:
        if key in keys and values.get(key) is None:
            raise UserError(f"--{key} is required (or pass {given_by} in a run folder that holds {ARGS_FILE})")


def take_recorded(values, explicit, keys, recorded, args_file, must_match, conflict_fix):
    """([keys taken from the run], {key: the run's value} for explicit values that differ); fills `values`."""
    taken, overridden = {}, {}
    for key in keys:
        if recorded.get(key) is None:
            continue
        value, run_value = values[key], recorded[key]
        if key not in explicit:
            if key == "pretrained_model_path":
                check_recorded_pretrained_path(run_value, args_file)
            values[key] = run_value
            taken[key] = run_value
        elif value != run_value and key in must_match:
            raise UserError(f"--{key} {value}: the run was trained with --{key} {run_value} ({args_file}); "
                            + conflict_fix.format(key=key, run_value=run_value))
        elif value != run_value:
            print(f"note: --{key} {value} given; the run was trained with {run_value} ({args_file})",
                  file=sys.stderr)
            overridden[key] = run_value
    return list(taken), overridden


def parse_resume(parser, argv, run_dir_of, changeable, per_invocation=("max_steps",), resume_dest="resume"):
    """parse_args for a trainer whose --resume names a run folder: `--resume RUN_DIR` alone continues the run.

    `run_dir_of(namespace)` is the folder to resume (None: a new run, parsed as usual). Every option the run recorded in
    its args.json and argv does not give is taken from it (so the script's required options are not required);
    an explicit value that differs from the run's is refused in one line, except the `changeable` ones (progress
    bars, device: they do not change what is computed), which are noted. `per_invocation` options (--max_steps: where
    this invocation stops) are never taken: a resumed run goes to its end unless given again. Sets run_folder.
    `parser` is a palkit.cli.ArgumentParser (its `options` list the options)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    required = [a for a in parser.options if a.required]
    for action in required:  # a resumed run has them in its args.json; checked below
        action.required = False
    args = parser.parse_args(argv)
    run_dir = run_dir_of(args)
    if run_dir is None:
        for action in required:
            action.required = True
        return parser.parse_args(argv)
    recorded = read_run_args(run_dir)
    if recorded is None:
        raise UserError(f"--resume {run_dir}: no {ARGS_FILE} there; nothing to resume (pass the folder of a run this "
                        "script started, or drop --resume to start a new run)")
    keys = [a.dest for a in parser.options
            if a.dest in recorded and a.dest not in (resume_dest, *per_invocation) and a.default is not argparse.SUPPRESS]
    must_match = set(keys) - set(changeable)
    apply_run_dir(vars(args), explicit_dests(parser, argv), keys, run_dir, "--resume", must_match, RESUME_FIX,
                  announce=False)
    missing = [a.option_strings[0] for a in required if getattr(args, a.dest) is None]
    if missing:
        raise UserError(f"{os.path.join(run_dir, ARGS_FILE)}: no {', '.join(missing)}; pass "
                        f"{' and '.join(missing)} as the run was started")
    print(f"note: resuming {run_dir} with the arguments in its {ARGS_FILE}", file=sys.stderr)
    return args


def parse_with_run_folder(parser, argv, keys, checkpoint_attr="load_checkpoint"):
    """parser.parse_args(argv), then `apply_run_folder` with the options that argv gave explicitly."""
    args = parser.parse_args(argv)
    apply_run_folder(vars(args), explicit_dests(parser, argv), keys, checkpoint_attr)
    return args


def model_config_dir(run_folder):
    """The run folder (a `run_folder` record) when it holds the trained model's config.json (the model is built from
    it), else None."""
    return run_folder["path"] if run_folder and run_folder["model_config"] else None


def resume_command(script, run_dir, runtime):
    """The command that continues a run (printed on Ctrl-C and when --max_steps stops it), runnable as printed from
    the current directory in a plain shell: the launcher RUN/python, paths relative to the working directory."""
    launch = launcher()
    if runtime.distributed:
        launch += f" -m torch.distributed.run --nproc_per_node {runtime.world_size}"
    return f"{launch} {os.path.relpath(script)} --resume {run_dir}"
