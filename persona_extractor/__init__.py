"""PAL stage 1, the persona extractor (a BART fine-tuned on PersonaChat). Modules: see persona_extractor/README.md."""
