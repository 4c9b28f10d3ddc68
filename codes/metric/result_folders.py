"""What a result folder is: which system, training seed, epoch and decoding seed, read from the files beside it.

A folder written by codes/infer.py holds infer_args.json (its arguments: config, strategy_alpha, decoding seed,
checkpoint). The checkpoint's folder is the training run: args.json (training seed and hyperparameters) and
eval_log.csv (validation PPL per epoch); the epoch is N of the checkpoint's epoch-N.bin. A folder without
infer_args.json (e.g. one scored by codes/evaluate.py alone) is a system of its own, named after its path.

Checkpoint-selection rules (summarize_results.py --select, compare_systems.py --select):
  given      every folder as given (an error when a run has several epochs: choose a rule)
  epoch:N    the folders of epoch N of every run
  best_ppl   per run, the decoded epoch with the lowest validation PPL in the run's eval_log.csv
  every      every epoch, one row each (summarize_results.py only)
"""
import os
import re
import sys
from dataclasses import dataclass, field

from palkit.atomic import restore
from palkit.cli import UserError
from palkit.loaders import load_json, read_csv
from pal.decoding import parse_alpha
from pal.results import check_result_folder
from pal.variants import VARIANTS, by_name, for_config
# Settings that must agree between the folders of one system (else they are different systems).
DECODING_KEYS = ("top_k", "top_p", "temperature", "num_beams", "max_length", "min_length", "length_penalty",
                 "repetition_penalty", "no_repeat_ngram_size", "do_sample", "strategy_top3_k", "max_input_length",
                 "max_decoder_input_length", "use_all_persona")
TRAINING_KEYS = ("learning_rate", "warmup_steps", "num_epochs", "train_batch_size", "weight_decay",
                 "weight_decay_rule", "optimizer", "loss_averaging", "fusion_mask_padding", "max_decoder_input_length")
EPOCH_PATTERN = re.compile(r"epoch-(\d+)\.bin$")


@dataclass
class FolderInfo:
    path: str
    system: str  # a variant's name (pal.variants: pal, pal_alpha0, ...; with +gold/+fmask), or the folder's name
    train_seed: object = None
    epoch: object = None
    decode_seed: object = None
    run_dir: object = None
    eval_ppl: dict = field(default_factory=dict)  # epoch -> validation PPL of the run
    settings: dict = field(default_factory=dict)
    described: bool = True  # False: no infer_args.json, the system is only the folder's name

    @property
    def label(self):
        base, _, extra = self.system.partition("+")
        return system_label(base) + (f" +{extra}" if extra else "")

    @property
    def paper_key(self):
        declared = by_name(self.system)
        return self.system if declared and declared.table3_row else None


def system_label(system):
    """A variant's label (pal.variants), else the system key itself."""
    declared = by_name(system)
    return declared.label if declared else system


def _is_result(folder):
    return any(os.path.isfile(os.path.join(folder, f)) for f in ("metric.json", "gen.json"))


def _result_folders_below(path):
    """Result folders in and below `path`, sorted; hidden folders (a commit's temporary ones) are skipped, and a
    folder a kill left as `.<name>.old` only (between the two renames of its commit) is put back."""
    found = []
    for root, dirs, _ in os.walk(path):
        for name in [d for d in dirs if d.startswith(".")]:
            dirs.remove(name)
            final = name[1:-len(".old")] if name.endswith(".old") else None
            if final and final not in dirs:
                restore(os.path.join(root, final))
                dirs.append(final)
        found.extend([root] if _is_result(root) else [])
    return sorted(found)


def find_result_folders(paths):
    """Each path is a result folder or a folder holding result folders (found recursively, in sorted order); a
    mixed result folder is refused and an unsealed one noted (pal.results.check_result_folder)."""
    found = []
    for path in paths:
        restore(path)  # a kill between the two renames of a commit: the earlier folder is put back
        if not os.path.isdir(path):
            raise UserError(f"{path}: no such folder (give result folders written by codes/infer.py)")
        inner = [path] if _is_result(path) else _result_folders_below(path)
        if not inner:
            raise UserError(f"{path}: no result folder (metric.json or gen.json) in it or below it")
        found.extend(inner)
    for folder in found:
        check_result_folder(folder)
    return found


def _alpha_value(text):
    """A recorded --strategy_alpha's value (pal.decoding.parse_alpha), None when it does not parse."""
    try:
        return parse_alpha(text)
    except UserError:
        return None


def system_of(infer_args):
    """The system a result folder belongs to: the name of the variant it was decoded as (pal.variants: a
    --strategy_alpha override of a persona variant names a decoding variant, e.g. 0 -> pal_alpha0), plus +gold /
    +fmask; infer_chat.py's folders carry their system's name."""
    if isinstance(infer_args.get("system"), dict):  # codes/infer_chat.py: a chat_systems spec, named by the user
        return infer_args["system"]["name"]
    config = infer_args.get("config_name")
    trained = for_config(config)
    alpha = infer_args.get("strategy_alpha")
    system = str(config) if trained is None else trained.result_system(alpha, _alpha_value(alpha))
    for flag, extra in (("use_gold_strategy", "gold"), ("fusion_mask_padding", "fmask")):
        if infer_args.get(flag):
            system += "+" + extra
    return system


def _checkpoint_path(infer_args, folder):
    """The checkpoint a folder was decoded from: absolute as recorded, else relative to the current directory (the
    RUN scripts run from the repository root)."""
    for key in ("checkpoint", "load_checkpoint"):
        path = infer_args.get(key)
        if path and (os.path.isfile(path) or os.path.isdir(os.path.dirname(path))):
            return os.path.abspath(path)
    return None


def read_eval_log(run_dir):
    """{epoch: validation PPL} from eval_log.csv (the last row of an epoch wins: a resumed partial epoch)."""
    path = os.path.join(run_dir, "eval_log.csv")
    if not os.path.isfile(path):
        return {}
    _, rows = read_csv(path)
    out = {}
    for line, row in enumerate(rows, start=2):
        try:
            out[int(float(row["epoch"]))] = float(row.get("eval_ppl") or row.get("freq_ppl"))
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path}, line {line}: expected numeric epoch and eval_ppl columns")
    return out


def read_folder_info(folder):
    infer_path = os.path.join(folder, "infer_args.json")
    if not os.path.isfile(infer_path):
        return FolderInfo(folder, system=None, described=False)
    infer_args = load_json(infer_path, expect=dict)
    if infer_args.get("partial"):  # infer.py's record of a test file marked partial (pal.completeness)
        print(f"note: {folder} was decoded on a partial test file: {infer_args['partial']}", file=sys.stderr)
    info = FolderInfo(folder, system_of(infer_args), decode_seed=infer_args.get("seed"))
    info.settings = {k: infer_args.get(k) for k in DECODING_KEYS}
    info.settings["test file"] = os.path.basename(str((infer_args.get("infer_input_file") or [""])[0]))
    checkpoint = _checkpoint_path(infer_args, folder)
    if checkpoint:
        match = EPOCH_PATTERN.search(checkpoint)
        info.epoch = int(match.group(1)) if match else None
        info.run_dir = os.path.dirname(checkpoint)
        args_path = os.path.join(info.run_dir, "args.json")
        if os.path.isfile(args_path):
            train_args = load_json(args_path, expect=dict)
            info.train_seed = train_args.get("seed")
            info.settings.update({f"training {k}": train_args.get(k) for k in TRAINING_KEYS})
        info.eval_ppl = read_eval_log(info.run_dir)
    return info


def short_names(paths):
    """The shortest trailing path parts that tell the folders apart ('pal/epoch-3' instead of the full path)."""
    parts = [os.path.normpath(os.path.abspath(p)).split(os.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
    return [os.path.normpath(p) for p in paths]


def read_infos(folders):
    """FolderInfo per folder; folders without metadata become systems named by their short path."""
    infos = [read_folder_info(f) for f in folders]
    unnamed = [i for i in infos if i.system is None]
    for info, name in zip(unnamed, short_names([i.path for i in unnamed]) if unnamed else []):
        info.system = name
    check_systems(infos)
    return infos


def check_systems(infos):
    """Folders of one system must share decoding and training settings (mixing them would average two models)."""
    first = {}
    for info in infos:
        ref = first.setdefault(info.system, info)
        for key, value in info.settings.items():
            if key in ref.settings and ref.settings[key] != value:
                raise UserError(f"{info.path} and {ref.path} are both {info.label} but differ in {key} ({value!r} vs "
                                f"{ref.settings[key]!r}); summarize or compare them in separate calls")


def group_by_system(infos):
    """{system: [FolderInfo]} in a stable order: the paper's rows first (pal.variants' order), then by first
    appearance."""
    order = [v.name for v in VARIANTS.values() if v.table3_row]
    groups = {}
    for info in infos:
        groups.setdefault(info.system, []).append(info)
    return dict(sorted(groups.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def parse_rule(text):
    if text in ("given", "best_ppl", "every"):
        return text
    match = re.fullmatch(r"epoch:(\d+)", text)
    if not match:
        raise UserError(f"--select {text}: expected given, best_ppl, every or epoch:N")
    return text


def select(infos, rule):
    """{(system, epoch or None): [FolderInfo]} chosen by a checkpoint-selection rule; the epoch is the key's second
    part only for `every`."""
    groups = {}
    for system, members in group_by_system(infos).items():
        by_run = {}
        for info in members:
            by_run.setdefault((info.run_dir, info.train_seed), []).append(info)
        for (run_dir, seed), folders in by_run.items():
            for info in _select_run(folders, rule, system, seed):
                key = (system, info.epoch if rule == "every" else None)
                groups.setdefault(key, []).append(info)
    return dict(sorted(groups.items(), key=lambda kv: (list(group_by_system(infos)).index(kv[0][0]),
                                                       -1 if kv[0][1] is None else kv[0][1])))


def _select_run(folders, rule, system, seed):
    epochs = sorted({f.epoch for f in folders}, key=lambda e: -1 if e is None else e)
    what = f"{system_label(system)} (training seed {seed})"
    if rule == "every":
        if None in epochs:
            raise UserError(f"{folders[0].path}: its epoch is unknown (no infer_args.json with an epoch-N.bin "
                            "checkpoint); --select every needs it")
        return folders
    if rule == "given":
        if len(epochs) > 1:
            raise UserError(f"{what} has result folders for epochs {epochs}: choose --select best_ppl, epoch:N or "
                            "every")
        return folders
    if rule == "best_ppl":
        ppl = folders[0].eval_ppl
        missing = [e for e in epochs if e not in ppl]
        if missing:
            raise UserError(f"{folders[0].path}: no validation PPL for epoch {missing[0]} (eval_log.csv of the run "
                            f"{folders[0].run_dir}); --select best_ppl needs it")
        best = min(epochs, key=lambda e: (ppl[e], e))
    else:
        best = int(rule.split(":")[1])
        if best not in epochs:
            raise UserError(f"{what}: no result folder for epoch {best} (have {epochs})")
    return [f for f in folders if f.epoch == best]
