"""A small ESConv.json in the original schema with the seekers' survey scores (the judge's validation tests run
without ../shared), and an independent count of what the trivial baselines compare."""
import json

PROBLEMS = ("job crisis", "ongoing depression")
# (empathy, relevance, initial, final) per dialogue; problems alternate
RATINGS = [(5, 5, 5, 1), (3, 2, 4, 4), (5, 4, 5, 2), (2, 3, 3, 3), (5, 5, 4, 1), (4, 3, 5, 4), (3, 5, 2, 2),
           (5, 5, 5, 3), (1, 2, 4, 5), (5, 3, 3, 1), (3, 4, 5, 5), (5, 5, 4, 2)]


def dialogue(k, empathy, relevance, initial, final):
    """Dialogue k: 4 to 7 exchanges; supporter turns of different lengths, some of them questions."""
    turns = []
    for t in range(4 + k % 4):
        turns.append({"speaker": "seeker", "annotation": {}, "content": f"I feel bad about thing {t} of case {k}."})
        words = " ".join(["that sounds hard"] * (1 + (k * 3 + t) % 5))
        question = " How do you feel now?" if (k + t) % 3 == 0 else "."
        turns.append({"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": words + question})
    return {"experience_type": "Current Experience", "emotion_type": ("anxiety", "sadness")[k % 2],
            "problem_type": PROBLEMS[k % 2], "situation": f"Situation of case {k}.",
            "survey_score": {"seeker": {"initial_emotion_intensity": str(initial), "empathy": str(empathy),
                                        "relevance": str(relevance), "final_emotion_intensity": str(final)},
                             "supporter": {"relevance": "5"}},
            "dialog": turns}


def write_esconv(path, scores=True):
    """ESConv.json at `path` (12 dialogues, the last without survey scores as in the real file; none with
    scores=False)."""
    dialogues = [dialogue(k, *r) for k, r in enumerate(RATINGS)]
    dialogues.append({**dialogue(len(RATINGS), 5, 5, 5, 1), "survey_score": {"seeker": {"initial_emotion_intensity": "4"}}})
    if not scores:
        for d in dialogues:
            d.pop("survey_score")
    path.write_text(json.dumps(dialogues))
    return str(path)


def supporter_counts(d):
    """(whitespace words, turns with '?') of the supporter in an original-schema dialogue, counted here again."""
    turns = [t["content"] for t in d["dialog"] if t["speaker"] == "supporter"]
    return sum(len(t.split()) for t in turns), sum("?" in t for t in turns)
