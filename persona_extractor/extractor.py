"""PAL stage 1, live inference: `PersonaExtractor` turns what a seeker said into a persona string.

    from persona_extractor.extractor import PersonaExtractor
    extractor = PersonaExtractor.from_pretrained("persona_extractor/runs/bart/best", device=None)  # None: CUDA if any
    extractor.infer_persona(["i lost my job", "my wife left", "i have two kids"])
    # -> "<persona> i lost my job. <persona> i have two kids. <input>"   (filters applied; "<input>" when empty)
    extractor.persona_for_turn(seeker_utterances)
    # -> "<input>" while the seeker has spoken fewer than FIRST_PERSONA_TURN (3) times, else infer_persona(...)

interact.py and the human-eval app (as pal.chat's LivePersona) and extractor_annotation.py use it. The text formats
and filters are in persona_text.py, the tokenizer/model loading and the authors' encoding/decoding in modeling.py.
"""
from palkit.cli import resolve_device
from persona_extractor.modeling import (EXTRACTOR_HINT, MAX_INPUT_LENGTH, DecodingSettings, decode_like_authors,
                                        encode_texts, load_tokenizer_and_model, pad_batch)
from pal.dialogues import INPUT_TOKEN
from persona_extractor.persona_text import FIRST_PERSONA_TURN, extractor_input, persona_from_generation


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
        tokenizer, model = load_tokenizer_and_model(path, EXTRACTOR_HINT)
        return cls(tokenizer, model, device=device, **options)

    def generate_raw(self, texts, batch_size=8, progress=None):
        """Decoded generations (the authors' raw `infer_res` strings) for input texts, in input order.

        Inputs are sorted by token length (longest first) so batches hold similar lengths; `progress` (a tqdm
        bar) advances by the number of texts of each batch.
        """
        import torch  # lazy: a second to import; the scripts' --help reads this module
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
        """Persona strings (docs/reproduction.md#data) for extractor input texts."""
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
