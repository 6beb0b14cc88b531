"""What one unit of model input may be, wherever it comes from: an HTTP body or a line of a bulk file."""

from __future__ import annotations

MAX_INPUTS = 256
MAX_INPUT_CHARS = 8_192


# The model parameters a request or a job line may set, and the encodings it may ask for (the API's
# EmbeddingParameters documents them; a unit test keeps the two equal).
PARAMETER_NAMES = ("normalize", "encoding_format", "cache")
ENCODINGS = ("float", "base64")


def checked_texts(value: str | list[str]) -> list[str]:
    """One text or a list of them, as a list; ValueError says which text breaks which limit."""
    texts = [value] if isinstance(value, str) else value
    if not 1 <= len(texts) <= MAX_INPUTS:
        raise ValueError(f"inputs must hold between 1 and {MAX_INPUTS} texts")
    for index, text in enumerate(texts):
        if not text.strip():
            raise ValueError(f"inputs[{index}] is empty")
        if len(text) > MAX_INPUT_CHARS:
            raise ValueError(f"inputs[{index}] is longer than {MAX_INPUT_CHARS} characters")
    return texts


def estimated_tokens(text: str) -> int:
    """WordPiece-like count without the tokenizer (kept out of Lambda): words and punctuation, plus the two
    special tokens; long words split into several pieces. Within about 15% of the real count on English."""
    tokens = 2
    word = 0
    for ch in text:
        if ch.isalnum():
            word += 1
            continue
        if word:
            tokens += 1 + (word - 1) // 6
            word = 0
        if not ch.isspace():
            tokens += 1
    if word:
        tokens += 1 + (word - 1) // 6
    return tokens
