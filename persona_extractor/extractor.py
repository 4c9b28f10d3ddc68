"""PAL stage 1: the persona extractor (a BART fine-tuned on PersonaChat), as a library.

The three scripts beside this file are thin command lines over it:
  process_bart_df.py   PersonaChat ParlAI text -> train/valid/test.csv (context -> persona pairs)
  train_bart.py        fine-tune BART on those pairs (plain PyTorch; extractor_training.py holds the loop)
  annotate_esconv.py   ESConv.json -> PESConv.json (adds `persona` and `persona_list`)

API for live persona inference (codes/interact.py uses it; put this folder on sys.path first):

    import sys; sys.path.insert(0, "<repo>/persona_extractor")
    from extractor import PersonaExtractor, FIRST_PERSONA_TURN
    extractor = PersonaExtractor.from_pretrained("persona_extractor/runs/bart/best", device=None)  # None: CUDA if any
    extractor.infer_persona(["i lost my job", "my wife left", "i have two kids"])
    # -> "<persona> i lost my job. <persona> i have two kids. <input>"   (filters applied; "<input>" when empty)
    extractor.persona_for_turn(seeker_utterances)
    # -> "<input>" while the seeker has spoken fewer than FIRST_PERSONA_TURN (3) times, else infer_persona(...)

Formats (SPEC "Data" / "Stage 1"):
- extractor input: the seeker's utterances (whitespace-normalised) joined by " <sep> ", followed by "</s>"
  (the authors' live-inference input; their PersonaChat training contexts end in " </s>" too).
- persona string: each kept sentence preceded by "<persona>", closed by "<input>":
  "<persona> i am a teacher. <persona> i have two kids. <input>"; no sentence kept -> "<input>".
- filters on inferred sentences: drop those containing "my favorite color is" or "my favorite band" (any case),
  or with fewer than 2 or more than 25 words.

Fidelity notes (what the authors' transformers 4.x code did, reproduced here on transformers 5):
- Token ids: their slow BartTokenizer, called with add_prefix_space=True and with <persona>/<sep> added as plain
  special tokens, put one space before the text and stripped the whitespace on both sides of every special token.
  transformers 5 does neither, so `encode_texts` rebuilds those ids (tests check them against ids produced by
  transformers 4.24 and 4.30).
- Decoding: their `decode(..., clean_up_tokenization_spaces=True)` joined added tokens with spaces and removed
  the space before punctuation ("kids ." -> "kids."); transformers 5 no longer cleans BPE output, so
  `decode_like_authors` does both.
- Generation: 10 beams, max length 128, early stopping; every other decoding setting comes from the checkpoint's
  generation config, as their generate() call took it from the model config (for bart-large-cnn: min_length 56,
  no_repeat_ngram_size 3, length_penalty 2.0, forced_bos_token_id 0).
- Filters: `authors_quirks=True` reproduces their filter loop exactly (it counts words with split(' ') on
  unstripped pieces, so surrounding spaces count as words, and it skips the piece after each removed one);
  the default follows the SPEC (every matching sentence dropped, words counted by whitespace).
"""
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

# pal.cli (UserError, run_main, atomic_write) lives in the repository's codes/ folder.
CODES_DIR = Path(__file__).resolve().parents[1] / "codes"
if str(CODES_DIR) not in sys.path:
    sys.path.insert(0, str(CODES_DIR))

from pal.checks import check_model_dir, check_tokenizer_dir  # noqa: E402
from pal.cli import UserError  # noqa: E402

PERSONA_TOKEN = "<persona>"
SEP_TOKEN = "<sep>"
INPUT_TOKEN = "<input>"
EXTRA_TOKENS = [PERSONA_TOKEN, SEP_TOKEN]  # added to BART's vocabulary, in this order (ids 50265, 50266)
EOS_TEXT = "</s>"  # BART's eos as text; the authors append it to every extractor input and target
DEFAULT_MODEL = "facebook/bart-large-cnn"
FIRST_PERSONA_TURN = 3  # persona inference starts once the seeker has spoken this many times
BANNED_PHRASES = ("my favorite color is", "my favorite band")
MIN_WORDS, MAX_WORDS = 2, 25
# Generation settings of the authors' infer step; everything else comes from the checkpoint's generation config.
NUM_BEAMS = 10
MAX_GEN_LENGTH = 128
MAX_INPUT_LENGTH = 512  # the authors' infer step truncates inputs to 512 tokens (training uses 128)
MODEL_HINT = ("give a local directory holding a BART checkpoint saved with save_pretrained (config.json, "
              "model weights, tokenizer files) or a hub name such as facebook/bart-large-cnn")


def normalise(text):
    """Collapse every run of whitespace to one space (as the reformat step does to ESConv utterances)."""
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------------------- PersonaChat

@dataclass
class PersonaChatDialogue:
    """One ParlAI dialogue. "your" is the speaker of the second (response) column, "partner" of the first."""
    first_line: int
    your_persona: list = field(default_factory=list)
    partner_persona: list = field(default_factory=list)
    partner_utterances: list = field(default_factory=list)
    your_utterances: list = field(default_factory=list)


_NUMBERED_LINE = re.compile(r"(\d+) (.*)\Z", re.DOTALL)
_PERSONA_PREFIXES = {"your persona: ": "your_persona", "partner's persona: ": "partner_persona"}


def _parse_line(dialogues, text, path, line_number):
    """Add one numbered line's content to the dialogue list (starting a new dialogue when the number is 1)."""
    where = f"{path}:{line_number}"
    match = _NUMBERED_LINE.match(text)
    if not match:
        raise UserError(f"{where}: expected '<number> <text>' (ParlAI text format), got {text[:60]!r}")
    number, rest = int(match.group(1)), match.group(2)
    if number == 1:
        dialogues.append((PersonaChatDialogue(first_line=line_number), 1))
    elif not dialogues or dialogues[-1][1] + 1 != number:
        expected = dialogues[-1][1] + 1 if dialogues else 1
        raise UserError(f"{where}: line number {number} where {expected} was expected "
                        f"(numbers restart at 1 for each dialogue)")
    dialogue = dialogues[-1][0]
    dialogues[-1] = (dialogue, number)
    for prefix, attribute in _PERSONA_PREFIXES.items():
        if rest.startswith(prefix):
            if dialogue.your_utterances:
                raise UserError(f"{where}: persona line after the dialogue's utterances; persona lines must "
                                f"come first")
            getattr(dialogue, attribute).append(rest[len(prefix):])
            return
    columns = rest.split("\t")
    if len(columns) < 2:
        raise UserError(f"{where}: utterance line without a tab-separated response "
                        f"(expected '<number> <utterance>\\t<response>[\\t...candidates]')")
    dialogue.partner_utterances.append(columns[0])
    dialogue.your_utterances.append(columns[1])


def read_personachat(path):
    """All dialogues of a ParlAI `*_both_original.txt` file (with or without candidate columns)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})")
    numbered = []  # (dialogue, last line number seen)
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue  # a trailing newline (or stray blank line) carries nothing
        _parse_line(numbered, line, path, line_number)
    dialogues = [d for d, _ in numbered]
    for d in dialogues:
        if not d.your_utterances:
            raise UserError(f"{path}:{d.first_line}: dialogue has persona lines but no utterance lines")
    return dialogues


def join_utterances(utterances, eos_suffix=" " + EOS_TEXT):
    return " <sep> ".join(utterances) + eos_suffix


def join_persona(sentences, eos_suffix=" " + EOS_TEXT):
    return " <persona> ".join(sentences) + eos_suffix


def dialogue_examples(dialogue, eos_suffix=" " + EOS_TEXT):
    """The two (context, persona) pairs of a dialogue: the response speaker's ("your") first, then the partner's."""
    return [
        (join_utterances(dialogue.your_utterances, eos_suffix), join_persona(dialogue.your_persona, eos_suffix)),
        (join_utterances(dialogue.partner_utterances, eos_suffix),
         join_persona(dialogue.partner_persona, eos_suffix)),
    ]


# ------------------------------------------------------------------------------------ extractor text formats

def extractor_input(seeker_utterances):
    """The text the extractor reads: the seeker's utterances so far, joined by ' <sep> ', then '</s>'."""
    return join_utterances([normalise(u) for u in seeker_utterances], eos_suffix=EOS_TEXT)


def dialogue_inputs(seeker_utterances):
    """(input for `persona`, inputs for `persona_list`): all utterances, and the first k for k = 3 .. n."""
    n = len(seeker_utterances)
    whole = extractor_input(seeker_utterances) if n else None
    prefixes = [extractor_input(seeker_utterances[:k]) for k in range(FIRST_PERSONA_TURN, n + 1)]
    return whole, prefixes


def format_persona(sentences):
    """SPEC persona string: '<persona> s1 <persona> s2 <input>', or '<input>' when nothing is left."""
    return " ".join(f"{PERSONA_TOKEN} {s}" for s in sentences) + (" " if sentences else "") + INPUT_TOKEN


def split_generated(text):
    """Pieces of a decoded generation between <persona> tokens, with BART's special tokens removed (unstripped)."""
    for token in ("</s>", "<s>", "<pad>"):
        text = text.replace(token, "")
    return text.split(PERSONA_TOKEN)


def has_banned_phrase(sentence):
    lowered = sentence.lower()
    return any(phrase in lowered for phrase in BANNED_PHRASES)


def keep_sentence(sentence):
    """SPEC filter for one stripped sentence."""
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
    """Decoded extractor output -> SPEC persona string."""
    return format_persona(filter_sentences(split_generated(text), authors_quirks))


_CLEANUPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def clean_up_spaces(text):
    """The space clean-up transformers 4.x applied when decoding (removed for BPE tokenizers in 5.x)."""
    for before, after in _CLEANUPS:
        text = text.replace(before, after)
    return text


# ------------------------------------------------------------------------------------------- tokenization

def add_extractor_tokens(tokenizer):
    """Add <persona> and <sep> (as the authors did) unless the tokenizer already has them."""
    missing = [t for t in EXTRA_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    return tokenizer


def _special_token_pattern(tokenizer):
    specials = set(tokenizer.all_special_tokens) | set(EXTRA_TOKENS)
    ordered = sorted(specials, key=len, reverse=True)  # longest first so "</s>" is not read as "<s>"
    return re.compile("(" + "|".join(re.escape(t) for t in ordered) + ")")


def _segments(pattern, text):
    """Alternating (plain text, special token, plain text, ...) pieces with the authors' whitespace handling."""
    parts = pattern.split(" " + text)  # add_prefix_space=True: one space before the whole text
    for i in range(0, len(parts), 2):  # even indices are plain text, odd ones special tokens
        if i > 0:
            parts[i] = parts[i].lstrip()  # a special token eats the whitespace on its right ...
        if i < len(parts) - 1:
            parts[i] = parts[i].rstrip()  # ... and on its left
    return parts


def encode_texts(tokenizer, texts, max_length):
    """Token ids as the authors' tokenizer call made them: <s> + ids (cut to max_length - 2) + </s>."""
    pattern = _special_token_pattern(tokenizer)
    split_texts = [_segments(pattern, t) for t in texts]
    plain = [p for parts in split_texts for p in parts[0::2] if p]
    plain_ids = iter(tokenizer(plain, add_special_tokens=False)["input_ids"] if plain else [])
    encoded = []
    for parts in split_texts:
        ids = []
        for i, part in enumerate(parts):
            if i % 2:
                ids.append(tokenizer.convert_tokens_to_ids(part))
            elif part:
                ids.extend(next(plain_ids))
        encoded.append([tokenizer.bos_token_id] + ids[:max_length - 2] + [tokenizer.eos_token_id])
    return encoded


def decode_like_authors(tokenizer, ids):
    """The text their decode(ids, clean_up_tokenization_spaces=True) returned, special tokens included."""
    added = {tokenizer.convert_tokens_to_ids(t): t for t in EXTRA_TOKENS}
    pieces, run = [], []
    for token_id in ids:
        if token_id in added:
            if run:
                pieces.append(tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(run)))
                run = []
            pieces.append(added[token_id])
        else:
            run.append(token_id)
    if run:
        pieces.append(tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(run)))
    return clean_up_spaces(" ".join(pieces))


# ------------------------------------------------------------------------------------------------- model

def resolve_device(device=None):
    """'cuda' when a GPU is visible, else 'cpu'; an explicit device string wins."""
    import torch
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_model_location(path):
    looks_like_hub_name = path.count("/") == 1 and not path.startswith((".", "/", "~")) and not os.path.exists(path)
    if os.path.isdir(path) or looks_like_hub_name:
        return
    raise UserError(f"model {path!r} not found: {MODEL_HINT}")


def checkpoint_dir(path):
    """`path` itself, or its best/ checkpoint when `path` is a train_bart.py output folder."""
    path = str(path)
    best = os.path.join(path, "best")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")) and os.path.isdir(best):
        return best
    return path


def load_tokenizer_and_model(path):
    """BART tokenizer (with <persona>, <sep>) and model (embeddings resized to the tokenizer) from `path`
    (a save_pretrained folder, a train_bart.py output folder, whose best/ is used, or a hub name)."""
    from transformers import BartForConditionalGeneration, BartTokenizer
    path = checkpoint_dir(path)
    _check_model_location(path)
    check_tokenizer_dir(path, hint=MODEL_HINT)  # no silent substitute for missing tokenizer files
    check_model_dir(path, hint=MODEL_HINT)
    try:
        tokenizer = BartTokenizer.from_pretrained(path)
        model = BartForConditionalGeneration.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a BART checkpoint from {path!r} ({str(e).splitlines()[0]}): {MODEL_HINT}")
    add_extractor_tokens(tokenizer)
    if model.get_input_embeddings().num_embeddings != len(tokenizer):
        # transformers 4.x (the authors') drew new rows from N(0, init_std); 5.x defaults to mean-resizing.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return tokenizer, model


@dataclass
class DecodingSettings:
    """The authors' infer settings; None means 'as the checkpoint's generation config says'."""
    num_beams: int = NUM_BEAMS
    max_length: int = MAX_GEN_LENGTH
    early_stopping: bool = True
    min_length: int = None
    no_repeat_ngram_size: int = None
    length_penalty: float = None

    def generate_kwargs(self, tokenizer):
        kwargs = {"num_beams": self.num_beams, "max_length": self.max_length, "early_stopping": self.early_stopping,
                  "decoder_start_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id,
                  "pad_token_id": tokenizer.pad_token_id}
        for name in ("min_length", "no_repeat_ngram_size", "length_penalty"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs


def pad_batch(sequences, pad_id):
    """Right-padded id tensor and attention mask for a list of id lists."""
    import torch
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids, mask


class PersonaExtractor:
    """A fine-tuned BART that turns what a seeker said into a persona string."""

    def __init__(self, tokenizer, model, device=None, decoding=None, max_input_length=MAX_INPUT_LENGTH,
                 authors_quirks=False):
        self.tokenizer = tokenizer
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.decoding = decoding or DecodingSettings()
        self.max_input_length = max_input_length
        self.authors_quirks = authors_quirks

    @classmethod
    def from_pretrained(cls, path, device=None, **options):
        """Load from a save_pretrained directory (e.g. train_bart.py's <output_dir>/best) or a hub name."""
        tokenizer, model = load_tokenizer_and_model(path)
        return cls(tokenizer, model, device=device, **options)

    def generate_raw(self, texts, batch_size=8, progress=None):
        """Decoded generations (the authors' raw `infer_res` strings) for input texts, in input order.

        Inputs are sorted by token length (longest first) so batches hold similar lengths; `progress` (a tqdm
        bar) advances by the number of texts of each batch.
        """
        import torch
        encoded = encode_texts(self.tokenizer, texts, self.max_input_length)
        order = sorted(range(len(texts)), key=lambda i: (-len(encoded[i]), i))
        results = [None] * len(texts)
        kwargs = self.decoding.generate_kwargs(self.tokenizer)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            ids, mask = pad_batch([encoded[i] for i in chunk], self.tokenizer.pad_token_id)
            with torch.no_grad():
                out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                          **kwargs)
            for i, row in zip(chunk, out.tolist()):
                results[i] = decode_like_authors(self.tokenizer, row)
            if progress is not None:
                progress.update(len(chunk))
        return results

    def personas_for_inputs(self, texts, batch_size=8, progress=None):
        """SPEC persona strings for extractor input texts."""
        raw = self.generate_raw(texts, batch_size=batch_size, progress=progress)
        return [persona_from_generation(r, self.authors_quirks) for r in raw]

    def infer_persona(self, seeker_utterances):
        """Persona string inferred from all of `seeker_utterances` ('<input>' when there are none)."""
        if not seeker_utterances:
            return INPUT_TOKEN
        return self.personas_for_inputs([extractor_input(seeker_utterances)], batch_size=1)[0]

    def persona_for_turn(self, seeker_utterances):
        """What PAL sees live: '<input>' before the seeker's 3rd utterance, the inferred persona from then on."""
        if len(seeker_utterances) < FIRST_PERSONA_TURN:
            return INPUT_TOKEN
        return self.infer_persona(seeker_utterances)
