"""Generate replies for a test file and score them (the authors' codes/infer.py; docs/reproduction.md).

For each --infer_input_file: featurize it (inference examples: supporter turns right after a seeker turn); unless
--only_generate, the per-example loss with the validation batching (gen.json's loss/ppl, metric.json's perplexity);
generate with batches of exactly --infer_batch_size examples (pal.generation); write gen.json and gen.txt into
<checkpoint dir>/res_<checkpoint>_<file>_k.._p.._b.._t.._lp.._rp.._ng.. (the authors' name; options beyond theirs
add a suffix) and score them (metric.evaluate_records). The folder replaces an earlier one as one unit (pal.results).

Usage (from the repository root; RUN/infer_strat.sh has the released settings):
  RUN/python codes/infer.py --config_name strat --inputter_name strat --load_checkpoint RUN_DIR/epoch-4.bin \
      --infer_input_file DATA/pesconv/test.txt
  RUN/python codes/infer.py --load_checkpoint RUN_DIR       # RUN_DIR's last epoch, on the test.txt beside its data
A run folder's checkpoint brings the model's arguments from its args.json and config.json (palkit.run_folder);
explicit arguments win; infer_args.json records what was used. Without --infer_input_file the test file is the
test.txt beside the data the run was validated on (args.json's eval_input_file), else beside the data it was trained
on (its features' train_input_file), said in one line. The seed is set before each file.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import json
import math
import os
import sys

import torch
from tqdm import tqdm

from palkit.atomic import crash_point, write_json
from palkit.argtypes import existing_file, output_dir, positive_int
from palkit.paths import require_output_dir, require_output_file
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, resolve_device, run_main
from palkit.engine import seed_everything, to_device
from palkit.loaders import load_json
from palkit.options import add_device_argument, add_seed_argument
from palkit.run_folder import model_config_dir, parse_with_run_folder, read_run_args
from pal.completeness import note_partial
from pal.config import load_config
from pal.decoding import DecodingOptions, decoding_from_values
from pal.generation import decode_text, generate
from pal.inputter import Featurizer, inference_batches, settings_for, validation_batches
from pal.model import build_model
from pal.options import (add_authors_arguments, add_checkpoint_argument, add_decoding_arguments, add_fp16_argument,
                         add_fusion_arguments, add_length_arguments, add_model_arguments, add_persona_argument,
                         add_pretrained_argument, check_encode_context)
from pal.prepared import META_FILE, default_prepared_dir, features_dir
from pal.results import LABEL, new_result_folder

DEFAULTS = DecodingOptions()
TEST_FILE = "test.txt"  # the reformat's test split, beside train.txt and valid.txt
OUTPUT_FILES = ("gen.json", "gen.txt", "infer_args.json", "metric.json")

# What describes the trained model, read from the checkpoint's run folder unless given (palkit.run_folder). Not
# --max_decoder_input_length: here it is the label length of the loss/PPL (15 in the released infer script, 50 in
# training), an evaluation setting rather than the model's.
RUN_FOLDER_KEYS = ("config_name", "inputter_name", "pretrained_model_path", "max_input_length", "use_all_persona",
                   "fusion_mask_padding", "flush_subnormal_fusion")


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=DefaultsHelpFormatter)
    add_model_arguments(p, from_run_folder=True)
    add_seed_argument(p, 0)
    add_checkpoint_argument(p, from_run_folder=True)
    add_pretrained_argument(p)
    add_fp16_argument(p, "float16 autocast (CUDA only)")
    add_device_argument(p)
    add_length_arguments(p, 15, "label length for the loss/PPL; the released infer script used 15")
    p.add_argument("--infer_batch_size", type=positive_int, default=128)
    p.add_argument("--infer_input_file", nargs="+", default=None, type=existing_file,
                   help="test files written by codes/_reformat/process.py; default: the test.txt beside the data the "
                        "checkpoint's run was validated (or trained) on")
    add_persona_argument(p)
    p.add_argument("--only_generate", action="store_true", help="no loss, no metrics")
    p.add_argument("--add_nlg_eval", action="store_true", help="also pycocoevalcap BLEU/METEOR/ROUGE-L/CIDEr")
    p.add_argument("--save_dir", default=None, type=output_dir, help="write here instead of the authors' result folder")
    add_decoding_arguments(p)
    add_fusion_arguments(p)
    add_authors_arguments(p, "encode_context", "max_src_turn", "max_knowledge_length", "label_num", "multi_knl",
                          "chinese", "only_encode")
    return p


# ---- setup -------------------------------------------------------------------------------------------------------
def infer_files(args):
    """--infer_input_file as given; else the test.txt beside the run's validation file (args.json), else beside its
    training file (its features' meta.json), said in one line; a one-line error when neither is known."""
    if args.infer_input_file:
        return args.infer_input_file
    choose = "--infer_input_file FILE (INFER_FILE=FILE for the RUN scripts)"
    run = args.run_folder
    if run is None:
        raise UserError(f"no --infer_input_file, and the checkpoint {args.load_checkpoint} is not in a run folder with "
                        f"an args.json that records its data; pass {choose}, e.g. the {TEST_FILE} "
                        "codes/_reformat/process.py wrote")
    recorded = read_run_args(run["path"])
    sources = [(recorded.get("eval_input_file"), "the run's validation file (args.json)")]
    meta = os.path.join(features_dir(recorded["prepared_dir"]), META_FILE) if recorded.get("prepared_dir") else None
    if meta and os.path.isfile(meta):
        sources.append((load_json(meta, expect=dict).get("train_input_file"), f"its training file ({meta})"))
    for source, what in sources:
        candidate = os.path.join(os.path.dirname(source), TEST_FILE) if source else None
        if candidate and os.path.isfile(candidate):
            print(f"note: no --infer_input_file: using {os.path.relpath(candidate)}, the {TEST_FILE} beside {what}; "
                  f"pass {choose} to use another", file=sys.stderr)
            return [os.path.relpath(candidate)]
    looked = ", ".join(os.path.dirname(s) for s, _ in sources if s) or "nowhere: args.json names no data file"
    raise UserError(f"no --infer_input_file, and no {TEST_FILE} beside the data of the run {run['path']} (looked in "
                    f"{looked}); pass {choose}")


def autocast_factory(args, device):
    """A function returning a fresh autocast context (float16 with --fp16 True, else a no-op)."""
    if not args.fp16:
        return lambda: torch.autocast(device.type, enabled=False)
    if device.type != "cuda":
        raise UserError("--fp16 True needs a CUDA device")
    return lambda: torch.autocast("cuda", dtype=torch.float16)


# ---- result folder --------------------------------------------------------------------------------------------------
def result_dir(args, infer_file):
    """The authors' folder name, beside the checkpoint, plus suffixes for our extra decoding options."""
    if args.save_dir:
        if len(args.infer_input_file) > 1:
            raise UserError("--save_dir takes one --infer_input_file (each file needs its own result folder)")
        return args.save_dir
    if args.load_checkpoint:
        ckpt_dir, ckpt_name = os.path.split(os.path.abspath(args.load_checkpoint))
    else:
        ckpt_dir, ckpt_name = default_prepared_dir(args.inputter_name, args.config_name), "pretrained"
    base = os.path.basename(infer_file)
    stem = ".".join(base.split(".")[:-1])  # the authors' expression ("test.txt" -> "test")
    name = (f"res_{ckpt_name}_{stem}_k.{args.top_k}_p.{args.top_p}_b.{args.num_beams}_t.{args.temperature}"
            f"_lp.{args.length_penalty}_rp.{args.repetition_penalty}_ng.{args.no_repeat_ngram_size}")
    return os.path.join(ckpt_dir, name + option_suffix(args))


def option_suffix(args):
    """Non-authors' options get their own folder so they never overwrite a faithful run."""
    parts = []
    if args.use_gold_strategy:
        parts.append("_gold")
    if args.strategy_alpha is not None:
        parts.append("_alpha." + str(args.strategy_alpha).replace(",", "-"))
    if args.fusion_mask_padding:
        parts.append("_fmask")
    if args.do_sample is not None and args.do_sample != (args.top_k > 0 or args.top_p < 1):
        parts.append(f"_sample.{args.do_sample}")
    if args.strategy_top3_k != DEFAULTS.strategy_top3_k:
        parts.append(f"_top3k.{args.strategy_top3_k}")
    if args.contrastive_impl != DEFAULTS.contrastive_impl:
        parts.append(f"_impl.{args.contrastive_impl}")
    return "".join(parts)


# ---- the three passes ----------------------------------------------------------------------------------------------
@torch.no_grad()
def per_example_losses(model, batches, device, autocast, total):
    """[(summed token loss, label count)] per example in file order, with the validation batching."""
    out = []
    for batch in tqdm(batches, total=total, desc="loss", unit="batch", file=sys.stderr):
        with autocast():
            result = model(**to_device(batch, device))
        out.extend(zip(result.loss_sum_per_example.tolist(), result.label_count.tolist()))
    return out


def generate_records(model, toker, batches, decoding, device, autocast, total):
    """gen.json records (without loss fields) in file order."""
    records = []
    for batch in tqdm(batches, total=total, desc="generate", unit="batch", file=sys.stderr):
        with autocast():
            out = generate(model, to_device(batch, device), toker, decoding)
        records.extend(batch_records(batch, out, toker, model.predicts_strategy))
    return records


def batch_records(batch, out, toker, with_strategy):
    meta = batch["meta"]
    records = []
    for i, ids in enumerate(out["sequences"]):
        record = {"sample_id": meta["sample_id"][i], "post": meta["post"][i], "response": meta["response"][i],
                  "generation": decode_text(toker, ids), "persona": meta["persona"][i]}
        if with_strategy:
            record["cls_strat_id"] = int(batch["strat_id"][i])
            record["pred_strat_id"] = out["pred_strat_id"][i]
            record["pred_strat_id_top1"] = out["pred_strat_id_top1"][i]
            record["pred_strat_id_top3"] = out["pred_strat_id_top3"][i]
            record["pred_strat_id_dist"] = " ".join(map(str, out["pred_strat_id_dist"][i]))
        records.append(record)
    return records


def add_losses(records, losses):
    """token_num, loss = summed loss / token_num, ppl = exp(loss): the authors' per-example fields."""
    if len(losses) != len(records):
        raise RuntimeError(f"{len(losses)} losses for {len(records)} generated examples")
    for record, (loss_sum, count) in zip(records, losses):
        record["token_num"] = count
        record["loss"] = loss_sum / count
        record["ppl"] = math.exp(record["loss"])


def write_generations(save_dir, records):
    """gen.json and gen.txt into the (temporary) result folder."""
    with open(os.path.join(save_dir, "gen.json"), "w", encoding="utf-8") as f:
        json.dump(records, f, ensure_ascii=False, indent=2, sort_keys=False)
    with open(os.path.join(save_dir, "gen.txt"), "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def metrics_scorer():
    """metric.evaluate_records, imported before any decoding so a missing package costs no generation."""
    try:
        from metric import evaluate_records  # lazy: seconds to import (scikit-learn); not needed for --help
    except ImportError as e:
        raise UserError(f"cannot import the metrics package codes/metric ({e}); run with --only_generate and score "
                        "gen.json later with codes/evaluate.py")
    return evaluate_records


def check_result_dir(save_dir):
    """The result folder and the files infer.py writes into it can be written (checked before any work)."""
    require_output_dir(save_dir)
    for name in OUTPUT_FILES:
        require_output_file(os.path.join(save_dir, name))
    return save_dir


def infer_file(path, args, toker, model, featurizer, decoding, device):
    partial = note_partial(path)
    dialogue_features = featurizer.file_features(path, "inference", with_meta=True, progress=True)
    n_examples = sum(len(f) for f in dialogue_features)
    if n_examples == 0:
        raise UserError(f"{path}: no inference examples (no supporter turn right after a seeker turn)")
    pad, persona = toker.pad_token_id, featurizer.settings.persona_in_batches
    n_batches = math.ceil(n_examples / args.infer_batch_size)
    autocast = autocast_factory(args, device)
    seed_everything(args.seed)  # per file, as the authors: the same seed gives the same gen.json
    losses = None
    if not args.only_generate:
        losses = per_example_losses(model, validation_batches(dialogue_features, args.infer_batch_size, pad, persona),
                                    device, autocast, None)
    records = generate_records(model, toker, inference_batches(dialogue_features, args.infer_batch_size, pad, persona),
                               decoding, device, autocast, n_batches)
    if losses is not None:
        add_losses(records, losses)
    save_dir = result_dir(args, path)
    with new_result_folder(save_dir) as tmp:
        write_generations(tmp, records)
        crash_point(LABEL, "partial")
        # the absolute checkpoint lets summarize_results.py find the training run (seed, eval_log.csv) from anywhere
        checkpoint = os.path.abspath(args.load_checkpoint) if args.load_checkpoint else None
        write_json(os.path.join(tmp, "infer_args.json"), {**vars(args), "checkpoint": checkpoint, "partial": partial})
        if not args.only_generate:
            metrics_scorer()(records, tmp, add_nlg_eval=args.add_nlg_eval)
    print(f"wrote {len(records)} generations to {save_dir}/gen.json", file=sys.stderr)
    return save_dir


def main(argv=None):
    args = parse_with_run_folder(build_parser(), argv, RUN_FOLDER_KEYS)
    check_encode_context(args.encode_context)
    args.infer_input_file = infer_files(args)
    for path in args.infer_input_file:
        check_result_dir(result_dir(args, path))
    if not args.only_generate:
        metrics_scorer()
    device = resolve_device(args.device)
    decoding = decoding_from_values(vars(args))
    seed_everything(args.seed)
    config = load_config(args.config_name)
    settings = settings_for(config, args.inputter_name, args.max_input_length, args.max_decoder_input_length,
                            args.use_all_persona)
    toker, model = build_model(args.config_name, args.pretrained_model_path, args.load_checkpoint,
                               fusion_mask_padding=args.fusion_mask_padding, device=device,
                               model_config_dir=model_config_dir(args.run_folder),
                               flush_subnormal_fusion=args.flush_subnormal_fusion)
    model.eval()
    featurizer = Featurizer(toker, settings)
    for path in args.infer_input_file:
        infer_file(path, args, toker, model, featurizer, decoding, device)


if __name__ == "__main__":
    run_main(main)
