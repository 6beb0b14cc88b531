"""`make demo`: a few predictions against a running `make run`, with embeddings, similarities and timings."""

from __future__ import annotations

import sys
import time

import httpx
import numpy as np

from local_stack.runner import REPO, read_env_file

SENTENCES = [
    "A cat sleeps on the sofa.",
    "A kitten naps on the couch.",
    "The stock market fell sharply today.",
    "Shares dropped at the close of trading.",
]


def main() -> int:
    state = REPO / ".local"
    if not (state / "env").is_file():
        print("no local stack found: start it with `make run` in another terminal", file=sys.stderr)
        return 1
    env = read_env_file(state / "env")
    headers = {"Authorization": f"Bearer {(state / 'api-key').read_text().strip()}", "Prefer": "wait=20"}
    with httpx.Client(base_url=env["API_URL"], headers=headers, timeout=30) as client:
        started = time.perf_counter()
        response = client.post("/v1/predictions", json={"inputs": SENTENCES, "metadata": {"source": "make demo"}})
        elapsed = time.perf_counter() - started
        prediction = response.json()
        if prediction.get("status") != "succeeded":
            print(f"prediction {prediction.get('id')} is {prediction.get('status')}: {prediction}", file=sys.stderr)
            return 1
        vectors = np.array(prediction["output"]["embeddings"])
        print(
            f"prediction {prediction['id']}: {prediction['status']} in {elapsed:.2f}s "
            f"(queue {prediction['metrics']['queue_ms']} ms, inference {prediction['metrics']['inference_ms']} ms)"
        )
        print(f"model {prediction['output']['model']}, {prediction['output']['dimensions']} dimensions\n")
        for sentence, vector in zip(SENTENCES, vectors, strict=True):
            print(f"  {sentence:<42} [{', '.join(f'{v:+.4f}' for v in vector[:4])}, ...]")
        similarity = vectors @ vectors.T
        print("\ncosine similarity")
        for i, sentence in enumerate(SENTENCES):
            print(f"  {sentence[:28]:<30}" + " ".join(f"{similarity[i, j]:6.3f}" for j in range(len(SENTENCES))))

        burst_started = time.perf_counter()
        ids = [
            client.post("/v1/predictions", json={"inputs": f"burst text {i}"}, headers={"Prefer": ""}).json()["id"]
            for i in range(20)
        ]
        pending = set(ids)
        while pending and time.perf_counter() - burst_started < 60:
            pending = {
                i
                for i in pending
                if client.get(f"/v1/predictions/{i}").json()["status"]
                not in {"succeeded", "failed", "cancelled", "expired"}
            }
            time.sleep(0.2)
        print(
            f"\n20 single-text predictions submitted back to back finished in "
            f"{time.perf_counter() - burst_started:.2f}s ({len(pending)} unfinished)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
