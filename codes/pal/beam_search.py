"""Beam search and beam sampling for pal.generation, with transformers 4.x's rules (see pal.generation's docstring).

The decoder object only needs next_logits(ids), expand(n) (before the first step) and reorder(rows).
"""
import torch
import torch.nn.functional as F


class BeamHypotheses:
    """Finished hypotheses of one example, scored like transformers 4.x: sum_logprobs / len(ids) ** length_penalty
    (len(ids) counts the decoder prefix, not the eos)."""

    def __init__(self, num_beams, length_penalty, early_stopping):
        self.num_beams, self.length_penalty, self.early_stopping = num_beams, length_penalty, early_stopping
        self.beams = []  # (score, ids list)
        self.worst_score = 1e9

    def add(self, ids, sum_logprobs):
        score = sum_logprobs / (len(ids) ** self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst_score:
            self.beams.append((score, ids))
            if len(self.beams) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs, cur_len):
        if len(self.beams) < self.num_beams:
            return False
        if self.early_stopping:
            return True
        return self.worst_score >= best_sum_logprobs / cur_len ** self.length_penalty

    def best(self):
        return sorted(self.beams, key=lambda b: b[0])[-1][1]  # 4.x: sort, pop the last (ties: latest added)


def beam_search(decoder, prefix, max_total, procs, warpers, opts, toker):
    """transformers 4.x beam_search / beam_sample over the combined logits; returns the best ids per example."""
    batch_size, nb = prefix.shape[0], opts.num_beams
    decoder.expand(nb)
    ids = prefix.repeat_interleave(nb, 0)
    beam_scores = torch.zeros(batch_size, nb, device=ids.device)
    if warpers is None:
        beam_scores[:, 1:] = -1e9  # beam search starts from one live beam; 4.x beam_sample does not do this
    beam_scores = beam_scores.view(-1)
    hyps = [BeamHypotheses(nb, opts.length_penalty, opts.early_stopping) for _ in range(batch_size)]
    done = [False] * batch_size
    while ids.shape[1] < max_total:
        scores = procs(ids, F.log_softmax(decoder.next_logits(ids), dim=-1)) + beam_scores[:, None]
        cand_scores, cand_rows, cand_tokens = beam_candidates(scores, warpers, ids, batch_size, nb)
        beam_scores, next_tokens, rows = select_beams(ids, cand_scores, cand_rows, cand_tokens, hyps, done, nb, toker)
        ids = torch.cat([ids[rows], next_tokens[:, None]], dim=-1)
        decoder.reorder(rows)
        if all(done):
            break
    return finalize_beams(ids, beam_scores, hyps, done, nb)


def beam_candidates(scores, warpers, ids, batch_size, nb):
    """2 * num_beams (score, source row, token) candidates per example, best first."""
    vocab = scores.shape[-1]
    if warpers is not None:
        flat = warpers(ids, scores).view(batch_size, nb * vocab)
        picked = torch.multinomial(F.softmax(flat, dim=-1), num_samples=2 * nb)
        cand_scores = torch.gather(flat, -1, picked)
        cand_scores, order = torch.sort(cand_scores, descending=True, dim=1)
        cand = torch.gather(picked, -1, order)
    else:
        cand_scores, cand = torch.topk(scores.view(batch_size, nb * vocab), 2 * nb, dim=1, largest=True, sorted=True)
    base = torch.arange(batch_size, device=scores.device)[:, None] * nb
    return cand_scores, base + cand // vocab, cand % vocab


def select_beams(ids, cand_scores, cand_rows, cand_tokens, hyps, done, nb, toker):
    """transformers 4.x BeamSearchScorer.process: eos candidates among the top nb finish a hypothesis, the rest
    fill the nb live beams. Returns (beam scores, next tokens, source rows), each [batch * nb]."""
    batch_size, cur_len = len(hyps), ids.shape[1]
    next_scores = torch.zeros(batch_size, nb, device=ids.device)
    next_tokens = torch.full((batch_size, nb), toker.pad_token_id, dtype=torch.long, device=ids.device)
    next_rows = (torch.arange(batch_size, device=ids.device)[:, None] * nb).repeat(1, nb)
    scores_l, rows_l, tokens_l = cand_scores.tolist(), cand_rows.tolist(), cand_tokens.tolist()
    for b in range(batch_size):
        if done[b]:
            continue
        filled = 0
        for rank, (score, row, token) in enumerate(zip(scores_l[b], rows_l[b], tokens_l[b])):
            if token == toker.eos_token_id:
                if rank < nb:
                    hyps[b].add(ids[row].tolist(), score)
            else:
                next_scores[b, filled], next_tokens[b, filled], next_rows[b, filled] = score, token, row
                filled += 1
            if filled == nb:
                break
        done[b] = done[b] or hyps[b].is_done(max(scores_l[b]), cur_len)
    return next_scores.view(-1), next_tokens.view(-1), next_rows.view(-1)


def finalize_beams(ids, beam_scores, hyps, done, nb):
    """Add the live beams of unfinished examples, then take each example's best hypothesis."""
    rows, scores = ids.tolist(), beam_scores.tolist()
    for b, hyp in enumerate(hyps):
        if not done[b]:
            for r in range(b * nb, (b + 1) * nb):
                hyp.add(rows[r], scores[r])
    return [hyp.best() for hyp in hyps]
