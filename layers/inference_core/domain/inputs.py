"""What one unit of model input may be, wherever it comes from: an HTTP body or a line of a bulk file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

MAX_INPUTS = 256
MAX_INPUT_CHARS = 8_192


class EmbeddingParameters(BaseModel):
    """What the embedding model really supports; any other name is refused."""

    model_config = ConfigDict(extra="forbid")

    normalize: StrictBool = Field(
        default=True, description="L2-normalise each embedding (cosine similarity = dot product). false: raw pooling."
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float",
        description="`float`: arrays of numbers. `base64`: each embedding as base64 of little-endian float32 "
        "(about 3x smaller responses).",
    )
    cache: StrictBool = Field(
        default=True,
        description="false: neither served from nor stored in the result cache (the same as the header "
        "`Cache-Control: no-store`). Cached results equal fresh ones bit for bit.",
    )


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
