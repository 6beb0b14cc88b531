"""Model server throughput: ours vs sentence-transformers vs one request at a time. Prints a Markdown table.

    python -m bench.model_throughput [--size 512] [--repeats 1]

Times are machine-dependent: compare the columns of one run, not runs on different machines. Picks CUDA
when present, so the same command runs unchanged on a GPU machine.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import resource
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformer

from bench.corpus import corpus
from bench.harness import publish
from model_server.batcher import MicroBatcher
from model_server.config import token_budget
from model_server.embedder import Embedder

BATCH_SIZES = [1, 4, 8, 32, 64, 128]


def best_rate(items: int, run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return items / best


def peak_memory_mb() -> str:
    rss = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} RSS"
    if not torch.cuda.is_available():
        return rss
    gpu = torch.cuda.max_memory_allocated() / 2**20
    torch.cuda.reset_peak_memory_stats()
    return f"{rss} / {gpu:.0f} GPU"


def merged_single_requests(embedder: Embedder, texts: list[str]) -> None:
    """Every text as its own concurrent request: the server merges them into shared batches."""

    async def run() -> None:
        budget = token_budget(0, embedder.device.type)
        batcher = MicroBatcher(embedder, max_tokens=budget, max_batch=128, merge_window_ms=2, max_texts=8192)
        await asyncio.gather(*(batcher.embed([t]) for t in texts))
        await batcher.stop()

    asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("bench/results/model_throughput.md"))
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = corpus(args.size)
    ours = Embedder(Path("/opt/ml/model"), device=device)
    reference = SentenceTransformer(str(ours.model_dir), device=device)
    if device == "cuda":
        reference.half()
    budget = token_budget(0, device)
    ours.embed(texts[:64])  # warm-up both
    reference.encode(texts[:64], batch_size=64)

    def rate(run: Callable[[], object], items: list[str] = texts) -> float:
        return best_rate(len(items), run, args.repeats)

    loop_rate = rate(lambda: [ours.embed([t]) for t in texts])
    loop_memory = peak_memory_mb()
    rows = []
    for size in BATCH_SIZES:
        # Both sides get the whole corpus and sort it by length; `size` is the forward-pass batch size.
        our_rate = rate(partial(ours.embed, texts, budget, size))
        our_memory = peak_memory_mb()
        st_rate = rate(partial(reference.encode, texts, batch_size=size, normalize_embeddings=True))
        rows.append(
            f"| {size} | {our_rate:.1f} | {st_rate:.1f} | {our_rate / st_rate:.2f}x | {our_rate / loop_rate:.2f}x "
            f"| {our_memory} |"
        )
    merged_rate = rate(partial(merged_single_requests, ours, texts))
    lengths = [len(ids) for ids in ours.tokenize(texts)[0]]
    short = [t for t, n in zip(texts, lengths, strict=True) if n <= 40]
    short_loop = rate(lambda: [ours.embed([t]) for t in short], short)
    short_64 = rate(partial(ours.embed, short, budget, 64), short)
    cut = sum(n >= ours.pooling.max_seq_length for n in lengths)

    lines = [
        f"# Model throughput, token budget {budget} per forward pass ({len(texts)} mixed-length texts, {device}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "",
        "| batch size | ours (items/s) | sentence-transformers (items/s) | ours / ST | ours / one-at-a-time "
        "| peak MB |",
        "|---:|---:|---:|---:|---:|---|",
        *rows,
        "",
        f"One request at a time (a loop of single-text calls): {loop_rate:.1f} items/s, peak {loop_memory} MB.",
        f"{len(texts)} concurrent single-text requests merged by the server's batcher: {merged_rate:.1f} items/s "
        f"({merged_rate / loop_rate:.2f}x the loop).",
        f"Short texts only ({len(short)} of them, <= 40 tokens): batch 64 {short_64:.1f} items/s vs one at a time "
        f"{short_loop:.1f} items/s ({short_64 / short_loop:.2f}x). Long texts are compute-bound on a CPU, so batching "
        f"gains most on short ones; the mixed corpus has {cut} texts cut at the model's 256-token limit.",
        "",
        "Items/s are machine-dependent; the ratios within one run are what to compare. Peak MB is the process peak "
        "so far (RSS grows monotonically across rows); on CUDA the GPU column is per row.",
    ]
    publish("\n".join(lines) + "\n", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
