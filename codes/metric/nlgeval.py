"""The authors' "nlg-eval" step (`--add_nlg_eval`): BLEU-1..4, METEOR, ROUGE-L and CIDEr from `pycocoevalcap`.

Inputs are the same lower-cased `nltk.word_tokenize` tokens as the other text metrics, joined by single spaces
(pycocoevalcap splits on spaces). Keys are the nlg-eval names: Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr, raw
fractions (CIDEr is on its usual 0-10 scale). The authors' nlg-eval also loaded GloVe embeddings from a private
path for embedding metrics; those are not computed here.

METEOR runs the METEOR 1.5 jar that ships inside the pycocoevalcap package and needs `java` on PATH. Without
Java (or if the jar fails) METEOR is left out with a one-line warning and every other metric is still computed.
"""
import shutil

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge

NO_JAVA_MESSAGE = ("METEOR skipped: no `java` on PATH (the METEOR 1.5 jar inside pycocoevalcap needs a Java "
                   "runtime, e.g. openjdk 17); the other nlg-eval metrics were computed")


def _as_coco_dicts(ref_tokens, hyp_tokens):
    refs = {i: [" ".join(r)] for i, r in enumerate(ref_tokens)}
    hyps = {i: [" ".join(h)] for i, h in enumerate(hyp_tokens)}
    return refs, hyps


def _meteor(refs, hyps):
    """(corpus score, per-example scores) or (None, None, reason) when Java is missing or the jar fails."""
    if shutil.which("java") is None:
        return None, None, NO_JAVA_MESSAGE
    from pycocoevalcap.meteor.meteor import Meteor  # lazy: only when java is there
    try:
        scorer = Meteor()  # starts `java -jar meteor-1.5.jar ... -stdio`
    except OSError as e:  # a java on PATH that cannot start
        return None, None, f"METEOR skipped: java did not start ({e}); check `java -version`"
    try:
        score, scores = scorer.compute_score(refs, hyps)
        return float(score), [float(s) for s in scores], None
    except (ValueError, OSError) as e:  # the JVM died (memory, missing paraphrase table): no score lines came back
        if scorer.lock.locked():  # compute_score holds the lock when it fails; the wrapper's __del__ re-acquires it
            scorer.lock.release()
        return None, None, f"METEOR skipped: the METEOR jar failed ({type(e).__name__}: {e}); check `java -version`"
    finally:
        _stop_meteor(scorer)


def _stop_meteor(scorer):
    process = scorer.meteor_p
    try:
        process.stdin.close()
    except OSError:
        pass
    process.kill()
    process.wait()


def nlgeval_scores(ref_tokens, hyp_tokens):
    """Return (scores, per_example_scores, warnings) for BLEU-1..4, METEOR, ROUGE-L and CIDEr."""
    refs, hyps = _as_coco_dicts(ref_tokens, hyp_tokens)
    scores, per_example, notes = {}, {}, []

    bleu, bleu_lists = Bleu(4).compute_score(refs, hyps, verbose=0)
    for k in range(4):
        scores[f"Bleu_{k + 1}"] = float(bleu[k])
        per_example[f"Bleu_{k + 1}"] = [float(s) for s in bleu_lists[k]]

    meteor, meteor_list, note = _meteor(refs, hyps)
    if note:
        notes.append(note)
    else:
        scores["METEOR"], per_example["METEOR"] = meteor, meteor_list

    for name, scorer in (("ROUGE_L", Rouge()), ("CIDEr", Cider())):
        score, score_list = scorer.compute_score(refs, hyps)
        scores[name] = float(score)
        per_example[name] = [float(s) for s in score_list]
    return scores, per_example, notes
