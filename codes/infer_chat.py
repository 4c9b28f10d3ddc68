"""Any system (chat_systems spec) on a reformatted test split: a result folder like codes/infer.py's.

    RUN/python codes/infer_chat.py --system name=smol,llm=smollm2 --infer_input_file DATA/pesconv/test.txt \
        [--output_dir DIR] [--max_examples N] [--ask_strategy [PROMPT_FILE]]

The examples are infer.py's (each supporter turn right after a seeker turn, with the conversation before it; gold
strategies in the history). gen.json holds post, response, generation, persona, strategy (and cls_strat_id /
pred_strat_id when the system names strategies, so evaluate.py scores strategy accuracy); local LLMs add the
per-example loss of the reference reply under their chat template (metric.json's perplexity); endpoints and PAL
checkpoints run here give none (PAL's own perplexity: codes/infer.py). --ask_strategy asks a chat LLM for one of
the 8 ESConv strategies first, then for the reply in it (prompts: chat_systems/prompts/ask_strategy.txt).
Finished examples are appended to DIR.progress.jsonl (made when the first batch is done, so a run that fails while
loading leaves none): a killed run started again with the same arguments goes on where it stopped, and gives the
gen.json an uninterrupted run gives; one with other arguments is refused naming them (--restart: start over). The
folder is sealed as infer.py's (pal.results).
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
from tqdm import tqdm
import json
import math
import os
import sys

from palkit.argtypes import existing_file, int_range, output_dir, positive_int, probability
from palkit.loaders import read_text
from palkit.atomic import file_sha256, write_json
from palkit.options import add_device_argument
from palkit.cli import ArgumentParser, UserError, resolve_device, run_main
from pal.config import STRATEGIES
from pal.results import new_result_folder

from chat_systems import load_system, parse_system_spec, require, spec_help
from chat_systems.supporter import (ASK_STRATEGY_PROMPTS, StrategyPrompts, ask_strategy_replies, supporter_examples,
                                    supporter_messages, turn_messages)
from chat_systems.system import LACKS

PPL_NOT_AVAILABLE = "perplexity: not available (system {name} {why}); metric.json has no perplexity for this folder"


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--system", required=True, type=parse_system_spec, metavar="SPEC", help=spec_help())
    p.add_argument("--infer_input_file", required=True, type=existing_file, help="reformatted test.txt")
    p.add_argument("--output_dir", default=None, type=output_dir,
                   help="the result folder (default: results/<name>_<input file name>)")
    p.add_argument("--max_examples", type=positive_int, default=None, help="the first N examples only")
    p.add_argument("--batch_size", type=positive_int, default=8, help="conversations per model call")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="sampling seed of every reply")
    p.add_argument("--temperature", type=float, default=None, help="default: the system's (0: greedy)")
    p.add_argument("--top_p", type=probability, default=None, help="default: the system's")
    p.add_argument("--max_tokens", type=positive_int, default=None, help="default: the system's")
    p.add_argument("--ask_strategy", nargs="?", const=ASK_STRATEGY_PROMPTS, default=None, type=existing_file,
                   metavar="PROMPT_FILE", help="chat LLMs: ask for a strategy first, then the reply (prompts: "
                                               "the given file, default chat_systems/prompts/ask_strategy.txt)")
    p.add_argument("--supporter_prompt", default=None, type=existing_file,
                   help="chat LLMs: the system prompt of the supporter (default chat_systems/prompts/supporter.txt)")
    add_device_argument(p)
    p.add_argument("--restart", action="store_true",
                   help="discard the progress of an unfinished run with other arguments (OUTPUT_DIR.progress.jsonl) "
                        "and start over; without it such a run is refused")
    return p


# progress header key -> the arguments that set it (named when a rerun's differ)
HEADER_ARGUMENTS = {"system": "--system", "input": "--infer_input_file",
                    "input_sha256": "--infer_input_file (its content)", "seed": "--seed", "decoding": ("--temperature", "--top_p", "--max_tokens"),
                    "ask_strategy": "--ask_strategy", "supporter_prompt": "--supporter_prompt"}


def differing_arguments(old, new):
    """The arguments whose values differ between two progress headers, as 'ARG (that run: X; this run: Y)'."""
    named = []
    for key in sorted(set(old) | set(new)):
        before, now, arguments = old.get(key), new.get(key), HEADER_ARGUMENTS.get(key, key)
        if before == now:
            continue
        if isinstance(arguments, tuple):  # one list of several arguments: name the elements that differ
            before, now = list(before or [None] * len(arguments)), list(now or [None] * len(arguments))
            named += [f"{a} (that run: {b}; this run: {n})" for a, b, n in zip(arguments, before, now) if b != n]
        else:
            named.append(f"{arguments} (that run: {json.dumps(before)}; this run: {json.dumps(now)})")
    return named


class Progress:
    """DIR.progress.jsonl: a header (what is being computed) and one finished record a line, flushed per batch. The
    file is (re)written at the first `add`, so a run that fails before its first batch leaves what was there."""

    def __init__(self, path, header, restart=False):
        self.path, self.header, self.records, self.written = path, header, [], False
        if os.path.exists(path) and not restart:
            lines = open(path, encoding="utf-8").read().split("\n")
            try:
                recorded = json.loads(lines[0])
            except json.JSONDecodeError:  # killed while writing its header: nothing done yet
                recorded = header
            if recorded != header:
                raise UserError(f"{path}: progress of a run with other arguments: "
                                f"{'; '.join(differing_arguments(recorded, header))}; pass that run's arguments to "
                                "finish it, or add --restart to discard it and start over")
            for line in lines[1:]:
                try:
                    self.records.append(json.loads(line))
                except json.JSONDecodeError:  # the line a kill cut short (the last one): its batch is redone
                    break
            print(f"note: resuming from {path}: {len(self.records)} examples done", file=sys.stderr)

    def add(self, records):
        if not self.written:  # the header and the records kept, without a torn last line (or a --restart's)
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as f:
                f.write("\n".join(json.dumps(x, ensure_ascii=False) for x in [self.header] + self.records) + "\n")
            self.written = True
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            f.flush()
            os.fsync(f.fileno())
        self.records.extend(records)


def records_for(system, batch, args, prompts, supporter_prompt):
    """gen.json records (strategy fields added later) of a batch of examples."""
    decoding = {"seed": args.seed, "temperature": args.temperature, "top_p": args.top_p, "max_tokens": args.max_tokens}
    if prompts is not None:
        pairs = ask_strategy_replies(system, [turn_messages(h) for _, h, _ in batch], prompts, **decoding)
    else:
        replies = system.reply_batch([supporter_messages(h, prompt=supporter_prompt) for _, h, _ in batch],
                                     **decoding)
        pairs = [(reply, None) for reply in replies]
    records = []
    for (sample_id, history, gold), (reply, strategy_answer) in zip(batch, pairs):
        record = {"sample_id": sample_id, "post": history[-1]["text"], "response": gold["text"],
                  "generation": reply.text, "persona": reply.persona or "", "strategy": reply.strategy,
                  "gold_strategy": gold["strategy"]}
        if strategy_answer is not None:
            record["strategy_answer"] = strategy_answer
        if system.capabilities.reference_nll:
            messages = supporter_messages(history, prompt=supporter_prompt)
            loss_sum, count = system.reference_nll(messages, gold["text"])
            record.update(token_num=count, loss=loss_sum / count)
            record["ppl"] = math.exp(record["loss"])
        records.append(record)
    return records


def with_strategy_ids(records, asked):
    """cls_strat_id / pred_strat_id when the system names strategies, so that evaluate.py scores strategy accuracy
    (an --ask_strategy answer that names none counts as Others; its `strategy` stays null)."""
    named = [r["strategy"] is not None for r in records]
    if not asked and not any(named):
        return records
    if not asked and not all(named):
        raise UserError(f"{sum(named)} of {len(records)} replies name a strategy; a system names one always or never")
    return [{**r, "cls_strat_id": STRATEGIES.index(r["gold_strategy"]),
             "pred_strat_id": STRATEGIES.index(r["strategy"] or STRATEGIES[-1])} for r in records]


def default_output_dir(args):
    stem = os.path.splitext(os.path.basename(args.infer_input_file))[0]
    return os.path.join("results", f"{args.system.name}_{stem}")


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.ask_strategy:
        require(args.system, "system_messages", "--ask_strategy (asks for a strategy in a system message)")
    if args.temperature is not None and not 0 <= args.temperature <= 2:
        raise UserError(f"--temperature {args.temperature}: must be in [0, 2]")
    prompts = StrategyPrompts(args.ask_strategy) if args.ask_strategy else None
    supporter_prompt = read_text(args.supporter_prompt).strip() if args.supporter_prompt else None
    out = args.output_dir or default_output_dir(args)
    examples = supporter_examples(args.infer_input_file, args.max_examples)
    header = {"system": args.system.identity(), "input": os.path.abspath(args.infer_input_file),
              "input_sha256": file_sha256(args.infer_input_file), "seed": args.seed,
              "decoding": [args.temperature, args.top_p, args.max_tokens],
              "ask_strategy": args.ask_strategy and file_sha256(args.ask_strategy),
              "supporter_prompt": args.supporter_prompt and file_sha256(args.supporter_prompt)}
    progress = Progress(f"{os.path.normpath(out)}.progress.jsonl", header, restart=args.restart)
    todo = examples[len(progress.records):]
    system = load_system(args.system, resolve_device(args.device)) if todo else None  # first: a bad name fails at once
    from metric import evaluate_records, require_punkt  # lazy: sklearn and NLTK take seconds to import
    require_punkt()
    if todo:
        with tqdm(total=len(examples), initial=len(examples) - len(todo), desc=f"{args.system.name} replies",
                  unit="example", file=sys.stderr) as bar:
            for start in range(0, len(todo), args.batch_size):
                batch = todo[start:start + args.batch_size]
                progress.add(records_for(system, batch, args, prompts, supporter_prompt))
                bar.update(len(batch))
    records = with_strategy_ids(progress.records[:len(examples)], bool(prompts))
    capabilities = args.system.capabilities
    if not capabilities.reference_nll:
        why = "; ".join(filter(None, [LACKS["reference_nll"], capabilities.notes.get("reference_nll")]))
        print(PPL_NOT_AVAILABLE.format(name=args.system.name, why=why), file=sys.stderr)
    with new_result_folder(out) as tmp:
        with open(os.path.join(tmp, "gen.json"), "w", encoding="utf-8") as f:
            json.dump(records, f, ensure_ascii=False, indent=2)
        write_json(os.path.join(tmp, "infer_args.json"),
                   {**vars(args), "system": args.system.identity(), "infer_input_file": [args.infer_input_file],
                    "output_dir": out, "perplexity": "yes" if capabilities.reference_nll else "not available"})
        evaluate_records(records, tmp)
    if os.path.exists(progress.path):
        os.remove(progress.path)
    print(f"wrote {len(records)} generations to {out}/gen.json", file=sys.stderr)
    return None


if __name__ == "__main__":
    run_main(main)
