"""Container settings, from environment variables (SageMaker passes the model's Environment through)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


# Measured with bench/model_throughput.py: small batches stay in CPU caches; a GPU wants large ones.
CPU_TOKEN_BUDGET = 2048
GPU_TOKEN_BUDGET = 16384


def token_budget(configured: int, device_type: str) -> int:
    if configured > 0:
        return configured
    return GPU_TOKEN_BUDGET if device_type == "cuda" else CPU_TOKEN_BUDGET


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    # Padded tokens per forward pass: bounds activation memory whatever the mix of lengths. 0 = by device.
    max_tokens_per_batch: int
    max_batch_size: int
    # Per-line limits: a line over them fails alone.
    max_inputs_per_line: int
    max_input_chars: int
    # How long the merger waits for other invocations to join a GPU batch once one is ready.
    merge_window_ms: int
    max_texts_per_merge: int
    # Bulk invocations (job chunks) run in slices of this many texts, interactive batches between them: the most
    # an interactive request waits for bulk work is one slice's forward pass. 0 = by device (a GPU pass of 128
    # short texts takes milliseconds; a CPU pass of 64 took up to 1.7 s under load, which put 3.4x on interactive
    # latency behind a backlog in bench-tenants; slices of 8 gave 1.65-1.9x, of 4 1.3-1.5x, so a CPU runs 4, for
    # up to a quarter of its bulk throughput: 128 against 139 mixed texts/s at 64 in bench/results/
    # model_throughput.md, 262 against 360 short ones). Slicing by padded length instead would win some back.
    bulk_slice_texts: int
    device: str
    num_threads: int
    port: int

    @classmethod
    def from_env(cls) -> ServerConfig:
        return cls(
            model_dir=Path(os.environ.get("MODEL_DIR", "/opt/ml/model")),
            max_tokens_per_batch=_int("MAX_TOKENS_PER_BATCH", 0),
            max_batch_size=_int("MAX_BATCH_SIZE", 128),
            max_inputs_per_line=_int("MAX_INPUTS_PER_LINE", 1024),
            max_input_chars=_int("MAX_INPUT_CHARS", 100_000),
            merge_window_ms=_int("MERGE_WINDOW_MS", 2),
            max_texts_per_merge=_int("MAX_TEXTS_PER_MERGE", 8192),
            bulk_slice_texts=_int("BULK_SLICE_TEXTS", 0),
            device=os.environ.get("DEVICE", "auto"),
            num_threads=_int("NUM_THREADS", os.cpu_count() or 1),
            port=_int("SAGEMAKER_BIND_TO_PORT", 8080),
        )
