"""Scripted seekers, supporters and judges (small classes with the system layer's `reply` method) for the automatic
evaluation's tests, and a study run on them: `python -m helpers.auto_eval_scripted DIR KILL_AT` (tests/ on the
path) runs the whole study in DIR and SIGKILLs itself at the KILL_AT-th model call (0: never), as a crash would."""
import os
import signal
import sys

from chat_systems import Capabilities, Reply
from auto_eval import cli, judge as judging, role_cards, study
from auto_eval.seeker import load_seeker_prompt
from human_eval.tasks import load_criteria
from helpers.human_eval import CARDS
from helpers.pal_models import DIALOGUES, write_dialogues

CRITERIA = load_criteria(cli.CRITERIA)
CALLS = {"n": 0, "kill_at": 0}


def write_test_file(tmp_path):
    dialogues = [{**d, "emotion_type": e, "problem_type": p, "situation": s} for d, (e, p, s) in zip(DIALOGUES, CARDS)]
    return write_dialogues(tmp_path / "test.txt", dialogues)


# ---- scripted systems -------------------------------------------------------------------------------------------
class Scripted:
    """A system (chat_systems.System) whose answer is `answer(messages)`; it records every call."""
    kind = "scripted"
    capabilities = Capabilities()

    def __init__(self, name, answer):
        self.name, self.answer, self.calls = name, answer, []
        self.strategy = None

    def identity(self):
        return {"kind": self.kind, "name": self.name}

    def reply_batch(self, conversations, *, seed=None, **decoding):
        seeds = seed if isinstance(seed, list) else [seed] * len(conversations)
        return [self.reply(m, seed=s, **decoding) for m, s in zip(conversations, seeds)]

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None):
        self.calls.append((messages, seed))
        CALLS["n"] += 1
        if CALLS["n"] == CALLS["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return Reply(text=self.answer(messages), strategy=self.strategy, persona=None,
                     usage={"prompt_tokens": sum(len(m["content"].split()) for m in messages), "completion_tokens": 1})


def supporter(name):
    system = Scripted(name, lambda messages: f"{name} answers {messages[-1]['content']!r}")
    system.strategy = "Question"
    return system


def seeker_answer(messages):
    """Acts as the supporter on its 2nd turn unless reminded (then it behaves); always on its 3rd (marked)."""
    own = sum(m["role"] == "assistant" for m in messages)
    if own == 2 and "Remember" not in messages[0]["content"]:
        return "Supporter: how can I help you?"
    if own == 3:
        return "I'm here to help you."
    return f"Seeker: I still feel bad ({own})"


def better_judge(better):
    """Answers the position of the conversation in which system `better` answered (or tie if both/neither)."""
    def answer(messages):
        text = messages[1]["content"]
        first, second = text.split("Conversation with supporter B:")
        a, b = f"{better} answers" in first, f"{better} answers" in second
        return "A" if a and not b else "B" if b and not a else "tie"
    return answer


def make_study(tmp_path, turns=3, cards=2, names=("good", "bad")):
    cards = role_cards.cards_from_test_file(write_test_file(tmp_path), cards)
    store = study.open_study(str(tmp_path / "study.db"), {"mode": "simulated"},
                                 study.simulation_tasks(cards, list(names), CRITERIA, 13, "cards.json"))
    systems = {n: supporter(n) for n in names}
    seeker = Scripted("scripted-seeker", seeker_answer)
    study.simulate(store, study.interactive_tasks_in(store), systems, seeker, seeker.name,
                       load_seeker_prompt(judging.SEEKER_PROMPT), turns, 13, progress=False)
    return store, systems, seeker


def judge_with(store, answer, name="judge"):
    judge = Scripted(name, answer)
    study.judge_study(store, judge, name, judging.load_prompt(judging.JUDGE_PROMPT, judging.JUDGE_FIELDS),
                          CRITERIA, 13, progress=False)
    return judge




def summary_of(store):
    from auto_eval import analyze
    return analyze.summarise(*analyze.read(store.path))


if __name__ == "__main__":
    from pathlib import Path
    CALLS["kill_at"] = int(sys.argv[2])
    store, _, _ = make_study(Path(sys.argv[1]))
    judge_with(store, better_judge("good"))
    store.close()
