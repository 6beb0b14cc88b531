"""The pure parts of POST /v1/embeddings: splitting a request into predictions, the checks, the token ids."""

from __future__ import annotations

import pytest

from inference_core.domain import token_ids
from inference_core.domain.inputs import MAX_INPUTS
from inference_core.domain.openai_requests import EmbeddingsRequest
from inference_core.errors import NotFoundError, ValidationFailedError
from inference_core.logic import embeddings


def test_a_request_is_split_into_predictions_within_their_limits_and_in_order() -> None:
    texts = [f"t{n}" for n in range(2048)]
    parts = embeddings.parts_of(texts)

    assert [t for part in parts for t in part] == texts
    assert all(1 <= len(part) <= MAX_INPUTS for part in parts)
    assert len(parts) == 2048 // MAX_INPUTS


def test_long_texts_split_by_size_too() -> None:
    texts = ["x" * 8000] * 40
    parts = embeddings.parts_of(texts)

    assert all(sum(len(t) for t in part) <= 150_000 for part in parts)
    assert sum(len(p) for p in parts) == 40


def test_each_part_has_a_key_of_its_own_content() -> None:
    assert embeddings.part_key(["a"], "float") == embeddings.part_key(["a"], "float")
    assert embeddings.part_key(["a"], "float") != embeddings.part_key(["a"], "base64")
    assert embeddings.part_key(["a", "b"], "float") != embeddings.part_key(["ab"], "float")
    assert len(embeddings.part_key(["a"] * 256, "float")) <= 255


@pytest.mark.parametrize(
    ("texts", "encoding_format", "dimensions", "param"),
    [
        ([], "float", None, "input"),
        (["x"] * 2049, "base64", None, "input"),
        ([" "], "float", None, "input"),
        (["x" * 8193], "float", None, "input"),
        (["x"], "float", 128, "dimensions"),
        (["x"] * 1025, "float", None, "encoding_format"),
    ],
)
def test_requests_past_the_limits_are_refused_naming_the_field(
    texts: list[str], encoding_format: str, dimensions: int | None, param: str
) -> None:
    request = _request(texts, encoding_format=encoding_format, dimensions=dimensions)
    with pytest.raises(ValidationFailedError) as refused:
        embeddings.checked_texts(request)
    assert refused.value.details["param"] == param


def _request(texts: list[str], model: str = "all-MiniLM-L6-v2", **fields: object) -> EmbeddingsRequest:
    return EmbeddingsRequest.model_validate({"input": texts, "model": model, **fields})


def test_2048_inputs_in_base64_and_the_models_own_dimensions_pass() -> None:
    request = _request(["x"] * 2048, encoding_format="base64", dimensions=384)
    assert len(embeddings.checked_texts(request)) == 2048


def test_other_model_names_are_not_found() -> None:
    embeddings.checked_texts(_request(["x"]))
    embeddings.checked_texts(_request(["x"], "sentence-transformers/all-MiniLM-L6-v2"))
    with pytest.raises(NotFoundError) as refused:
        embeddings.checked_texts(_request(["x"], "text-embedding-ada-002"))
    assert refused.value.code == "model_not_found"


def test_cl100k_token_ids_decode_to_their_text_and_foreign_ids_are_refused() -> None:
    assert token_ids.decode([15339, 1917]) == "hello world"
    for bad in ([100256], [-1], [10**12], []):
        with pytest.raises(token_ids.InvalidTokenIds):
            token_ids.decode(bad)
