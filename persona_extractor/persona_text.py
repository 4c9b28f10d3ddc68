"""The persona extractor's text formats and the persona filters (docs/reproduction.md#persona-extractor).

- extractor input: the seeker's utterances (whitespace-normalised) joined by " <sep> ", followed by "</s>"
  (the authors' live-inference input; their PersonaChat training contexts end in " </s>" too).
- persona string: each kept sentence preceded by "<persona>", closed by "<input>":
  "<persona> i am a teacher. <persona> i have two kids. <input>"; no sentence kept -> "<input>".
- filters on inferred sentences: drop those containing "my favorite color is" or "my favorite band" (any case),
  or with fewer than 2 or more than 25 words. `authors_quirks=True` reproduces the authors' filter loop exactly
  (it counts words with split(' ') on unstripped pieces, so surrounding spaces count as words, and it skips the
  piece after each removed one); the default follows the stated rule (every matching sentence dropped, words counted
  by whitespace).
"""
from pal.dialogues import PERSONA_TOKEN, format_persona, normalise

SEP_TOKEN = "<sep>"
EXTRA_TOKENS = [PERSONA_TOKEN, SEP_TOKEN]  # added to BART's vocabulary, in this order (ids 50265, 50266)
EOS_TEXT = "</s>"  # BART's eos as text; the authors append it to every extractor input and target
FIRST_PERSONA_TURN = 3  # persona inference starts once the seeker has spoken this many times
BANNED_PHRASES = ("my favorite color is", "my favorite band")
MIN_WORDS, MAX_WORDS = 2, 25


def join_utterances(utterances, eos_suffix=" " + EOS_TEXT):
    return " <sep> ".join(utterances) + eos_suffix


def join_persona(sentences, eos_suffix=" " + EOS_TEXT):
    return " <persona> ".join(sentences) + eos_suffix


def extractor_input(seeker_utterances):
    """The text the extractor reads: the seeker's utterances so far, joined by ' <sep> ', then '</s>'."""
    return join_utterances([normalise(u) for u in seeker_utterances], eos_suffix=EOS_TEXT)


def dialogue_inputs(seeker_utterances):
    """(input for `persona`, inputs for `persona_list`): all utterances, and the first k for k = 3 .. n."""
    n = len(seeker_utterances)
    whole = extractor_input(seeker_utterances) if n else None
    prefixes = [extractor_input(seeker_utterances[:k]) for k in range(FIRST_PERSONA_TURN, n + 1)]
    return whole, prefixes


def split_generated(text):
    """Pieces of a decoded generation between <persona> tokens, with BART's special tokens removed (unstripped)."""
    for token in ("</s>", "<s>", "<pad>"):
        text = text.replace(token, "")
    return text.split(PERSONA_TOKEN)


def has_banned_phrase(sentence):
    lowered = sentence.lower()
    return any(phrase in lowered for phrase in BANNED_PHRASES)


def keep_sentence(sentence):
    """The persona filter for one stripped sentence (True: keep it)."""
    return not has_banned_phrase(sentence) and MIN_WORDS <= len(sentence.split()) <= MAX_WORDS


def _authors_filter(pieces):
    """The authors' loop, quirks included. It removed pieces from the list it was iterating over, so the piece
    right after a removed one was never checked; and it counted words with split(' ') on unstripped pieces,
    so the empty strings around leading/trailing spaces counted as words."""
    pieces = list(pieces)
    position = 0  # what a for-loop's list iterator tracks
    while position < len(pieces):
        piece = pieces[position]
        words = len(piece.split(" "))
        if has_banned_phrase(piece) or words < MIN_WORDS or words > MAX_WORDS:
            pieces.remove(piece)  # list.remove drops the first equal piece; later ones slide left
        position += 1  # advances even after a removal: the piece that slid into place is skipped
    return pieces


def filter_sentences(pieces, authors_quirks=False):
    """Stripped sentences that pass the filters, in order; empty pieces never survive."""
    if authors_quirks:
        kept = _authors_filter(pieces)
        return [p.strip() for p in kept if p.strip()]
    stripped = [p.strip() for p in pieces]
    return [s for s in stripped if s and keep_sentence(s)]


def persona_from_generation(text, authors_quirks=False):
    """Decoded extractor output -> persona string."""
    return format_persona(filter_sentences(split_generated(text), authors_quirks))
