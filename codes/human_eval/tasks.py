"""The evaluation's tasks, made once when the database is created (the setup is recorded and checked on restart).

- interactive: one task per (ESConv test dialogue, pair of systems); the seeker card is the dialogue's emotion,
  problem and situation; which system is "A" is drawn per task (seeded) and recorded.
- static: one task per gen.json record of two result folders (same test contexts), replies shown as A and B.
- chat: one task per system, a browser `interact` (the strategy and the persona are always shown).
"""
import itertools
import os
import random

from metric.records import load_gen_json
from palkit.loaders import load_json
from palkit.cli import UserError
from pal.config import STRATEGIES
from pal.inputter import read_dialogues


QUESTION_MODES = ("interactive", "static")


def load_criteria(path):
    """[{"name", "question", "questions", "persona_only"}] from a criteria JSON file; a bad file is one UserError line.

    A criterion's "question" is one string for every mode or {"interactive": ..., "static": ...}; "questions" is
    always the per-mode dict, "question" the interactive wording."""
    data = load_json(path, hint="give --criteria a JSON file like codes/human_eval/criteria.json")
    criteria = data.get("criteria") if isinstance(data, dict) else None
    if not isinstance(criteria, list) or not criteria:
        raise UserError(f'{path}: expected {{"criteria": [{{"name": ..., "question": ...}}, ...]}}')
    for i, c in enumerate(criteria):
        question = c.get("question") if isinstance(c, dict) else None
        if isinstance(question, str):
            question = dict.fromkeys(QUESTION_MODES, question)
        if (not isinstance(c, dict) or not isinstance(c.get("name"), str) or not isinstance(question, dict)
                or not all(isinstance(question.get(m), str) for m in QUESTION_MODES)):
            raise UserError(f"{path}: criteria[{i}] needs a string 'name' and a 'question': a string, or one string "
                            f"per mode ({', '.join(QUESTION_MODES)})")
        c.update(questions=question, question=question["interactive"])
        c.setdefault("persona_only", False)
    names = [c["name"] for c in criteria]
    if len(set(names)) != len(names):
        raise UserError(f"{path}: criterion names must differ, got {names}")
    return criteria


def criteria_for(criteria, with_persona):
    return [c["name"] for c in criteria if with_persona or not c["persona_only"]]


def interactive_tasks(test_file, specs, criteria, num_dialogues, seed):
    """Tasks for every pair of systems on the first `num_dialogues` dialogues of a reformatted test file."""
    dialogues = [d for _, d in read_dialogues(test_file)][:num_dialogues]
    if not dialogues:
        raise UserError(f"{test_file}: no dialogues")
    for i, d in enumerate(dialogues):
        missing = [k for k in ("emotion_type", "problem_type", "situation") if not isinstance(d.get(k), str)]
        if missing:
            raise UserError(f"{test_file}: dialogue {i + 1} has no {', '.join(missing)} (reformat ESConv with "
                            f"codes/_reformat/process.py)")
    rng = random.Random(seed)
    tasks = []
    for i, d in enumerate(dialogues):
        for first, second in itertools.combinations(specs, 2):
            a, b = (second, first) if rng.random() < 0.5 else (first, second)
            card = {k: d[k] for k in ("emotion_type", "problem_type", "situation")}
            tasks.append({"mode": "interactive", "source": f"{test_file}#{i}", "system_a": a.name, "system_b": b.name,
                          "content": {"dialogue_index": i, "card": card,
                                      "criteria": criteria_for(criteria, a.uses_persona or b.uses_persona)}})
    return tasks


def chat_tasks(specs):
    return [{"mode": "chat", "source": s.source, "system_a": s.name, "system_b": s.name,
             "content": {"criteria": []}} for s in specs]


# ---- static -----------------------------------------------------------------------------------------------------------
def parse_results(text):
    """--results NAME=DIR (a result folder holding gen.json)."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise UserError(f"--results {text!r}: expected NAME=RESULT_DIR (a folder with gen.json)")
    path = os.path.join(folder, "gen.json")
    records = load_gen_json(path)
    if not all(isinstance(r, dict) and "generation" in r for r in records):
        raise UserError(f"{path}: expected a list of records with 'generation' (codes/infer.py's gen.json)")
    return name, path, records


def contexts_from_test_file(test_file):
    """The dialogue history of every inference example, in gen.json's order (a supporter turn after a seeker turn)."""
    contexts = []
    for index, (_, d) in enumerate(read_dialogues(test_file)):
        turns = d.get("dialog", [])
        for i in range(1, len(turns)):
            if turns[i]["speaker"] == "sys" and turns[i - 1]["speaker"] == "usr":
                contexts.append({"sample_id": index, "history": [{"speaker": t["speaker"], "text": t["text"]}
                                                                 for t in turns[:i]]})
    return contexts


def static_tasks(first, second, criteria, test_file, seed):
    """One task per test context; `first`/`second` are parse_results outputs of the same test file."""
    (name1, path1, recs1), (name2, path2, recs2) = first, second
    if name1 == name2:
        raise UserError(f"--results names must differ, got {name1!r} twice")
    if [(r.get("sample_id"), r.get("response")) for r in recs1] != [(r.get("sample_id"), r.get("response"))
                                                                  for r in recs2]:
        raise UserError(f"{path1} and {path2} are not generations for the same test contexts (sample_id/response "
                        f"differ); infer both on the same --infer_input_file")
    contexts = contexts_from_test_file(test_file) if test_file else None
    if contexts is not None and [c["sample_id"] for c in contexts] != [r.get("sample_id") for r in recs1]:
        raise UserError(f"{test_file}: its {len(contexts)} contexts do not match the {len(recs1)} records of {path1}; "
                        f"pass the --infer_input_file the results were made from")
    rng = random.Random(seed)
    tasks = []
    for i, (r1, r2) in enumerate(zip(recs1, recs2)):
        swap = rng.random() < 0.5
        (na, ra), (nb, rb) = ((name2, r2), (name1, r1)) if swap else ((name1, r1), (name2, r2))
        history = contexts[i]["history"] if contexts else [{"speaker": "usr", "text": r1.get("post", "")}]
        persona = shown_persona(r1) or shown_persona(r2)  # the persona is shown, and asked about, where known
        tasks.append({"mode": "static", "source": f"{path1}#{i} | {path2}#{i}", "system_a": na, "system_b": nb,
                      "content": {"history": history, "reply_a": ra["generation"], "reply_b": rb["generation"],
                                  "strategy_a": strategy_name(ra), "strategy_b": strategy_name(rb),
                                  "persona": persona, "criteria": criteria_for(criteria, bool(persona))}})
    return tasks


def shown_persona(record):
    """The seeker's persona sentences of a gen.json record, readable ("<input>" separators and placeholders out)."""
    sentences = [p.strip() for p in str(record.get("persona") or "").split("<input>")]
    return " ".join(p for p in sentences if p) or None


def strategy_name(record):
    sid = record.get("pred_strat_id")
    return STRATEGIES[sid] if isinstance(sid, int) and 0 <= sid < len(STRATEGIES) else None
