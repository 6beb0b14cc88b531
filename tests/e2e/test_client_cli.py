"""The `inference` CLI (the client package in client/), run as a subprocess against the local stack."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, RunningStack

pytestmark = pytest.mark.e2e

TEXTS = [
    "A cat sleeps on the sofa.",
    "The stock market fell sharply today.",
    "",  # a blank line: skipped, the line numbers stay those of the file
    "A kitten naps on the couch.",
    "How do I bake sourdough bread?",
    "Rain is expected over the weekend.",
]


@pytest.fixture(scope="module")
def key(stack: RunningStack) -> str:
    """A tenant of its own, so these predictions never show in other tests' lists."""
    return stack.create_key(f"client-cli-{uuid.uuid4().hex[:8]}")


def inference(stack: RunningStack, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m inference_client ARGS`, importable from client/src whether or not it is pip-installed."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "client" / "src"), os.environ.get("PYTHONPATH", "")]),
        "INFERENCE_API_URL": stack.env["API_URL"],
        "INFERENCE_API_KEY": key,
    }
    return subprocess.run(
        [sys.executable, "-m", "inference_client", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (math.hypot(*a) * math.hypot(*b))


def test_embed_a_file_into_ordered_json_lines_then_resume(stack: RunningStack, key: str, tmp_path: Path) -> None:
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n")
    out = tmp_path / "embeddings.jsonl"

    done = inference(stack, key, "embed", "-f", str(source), "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["written"], summary["blank_skipped"], summary["already_done"]) == (5, 1, 0)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 4, 5, 6]
    assert all(len(r["embedding"]) == 384 for r in records)
    assert all(math.hypot(*r["embedding"]) == pytest.approx(1.0, abs=1e-3) for r in records)  # normalised

    # In order: the same texts embedded in reverse order, one request, match line by line.
    texts = [t for t in TEXTS if t]
    reverse = inference(stack, key, "embed", *reversed(texts), "--json")
    assert reverse.returncode == 0, reverse.stderr
    reversed_vectors = [json.loads(line)["embedding"] for line in reverse.stdout.splitlines()][::-1]
    for record, expected in zip(records, reversed_vectors, strict=True):
        assert cosine(record["embedding"], expected) > 0.999
    assert cosine(records[0]["embedding"], records[2]["embedding"]) > 0.5  # the cat and the kitten
    assert cosine(records[0]["embedding"], records[1]["embedding"]) < 0.5  # the cat and the stock market

    again = inference(stack, key, "embed", "-f", str(source), "-o", str(out), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_done"] == 5
    assert json.loads(again.stdout)["written"] == 0
    assert len(out.read_text().splitlines()) == 5

    listed = inference(stack, key, "predictions", "list", "--all", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {p["status"] for p in json.loads(listed.stdout)["data"]} == {"succeeded"}  # nothing left running


def test_a_bad_key_is_one_line_and_exit_code_4(stack: RunningStack) -> None:
    refused = inference(stack, "not-a-key", "predictions", "list")
    assert refused.returncode == 4
    assert refused.stderr.startswith("error: ")
    assert refused.stderr.count("\n") == 1
    assert "Traceback" not in refused.stderr


def test_jobs_submit_waits_and_downloads_then_a_rerun_reuses_the_job(
    stack: RunningStack, key: str, tmp_path: Path
) -> None:
    lines = [json.dumps({"custom_id": f"t{n}", "inputs": text}) if text else "" for n, text in enumerate(TEXTS, 1)]
    source = tmp_path / "texts.jsonl"
    source.write_text("\n".join([*lines, "this is not json"]) + "\n")  # a blank line (skipped), an invalid one
    out, err = tmp_path / "out.jsonl", tmp_path / "err.jsonl"

    done = inference(
        stack, key, "jobs", "submit", str(source), "--wait", "--output", str(out), "--errors", str(err), "--json"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    job = summary["job"]
    assert summary["reused"] is False
    assert job["status"] == "completed", job
    assert job["request_counts"] == {"total": 6, "completed": 5, "failed": 1}
    assert job["metadata"]["file_name"] == "texts.jsonl"
    assert summary["files"] == {"output": str(out), "errors": str(err)}
    outputs = [json.loads(line) for line in out.read_text().splitlines()]
    valid = [(f"t{n}", n) for n, text in enumerate(TEXTS, 1) if text]
    assert [(o["custom_id"], o["line"]) for o in outputs] == valid  # one line per valid input line, in order
    assert all(len(o["output"]["embeddings"]) == 1 for o in outputs)
    assert all(len(o["output"]["embeddings"][0]) == 384 for o in outputs)
    assert cosine(outputs[0]["output"]["embeddings"][0], outputs[2]["output"]["embeddings"][0]) > 0.5  # cat, kitten
    assert [(e["line"], e["error"]["code"]) for e in map(json.loads, err.read_text().splitlines())] == [
        (len(TEXTS) + 1, "invalid_json")
    ]

    # The same file again: the finished job is found by its name and SHA-256 and downloaded, nothing is uploaded.
    again_out = tmp_path / "again.jsonl"
    again = inference(stack, key, "jobs", "submit", str(source), "--wait", "--output", str(again_out))
    assert again.returncode == 0, again.stderr
    assert again.stderr.startswith(f"reusing job {job['id']} (completed, ")
    assert f"output       {again_out} (5 lines)\n" in again.stdout
    assert again_out.read_bytes() == out.read_bytes()

    listed = inference(stack, key, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [j["id"] for j in json.loads(listed.stdout)["data"]] == [job["id"]]  # one job for two submits
