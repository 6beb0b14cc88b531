from __future__ import annotations

import tarfile
from pathlib import Path

from model.package import main
from model_server.embedder import Embedder


def test_the_archive_holds_a_model_directory_the_server_loads(tmp_path: Path, embedder: Embedder) -> None:
    archive = tmp_path / "model.tar.gz"

    assert main(["--output", str(archive)]) == 0

    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "opt-ml-model", filter="data")
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json"} <= names
    loaded = Embedder(tmp_path / "opt-ml-model", device="cpu")
    assert loaded.model_dir == tmp_path / "opt-ml-model"
    assert (loaded.embed(["same text"]).vectors @ embedder.embed(["same text"]).vectors.T)[0, 0] > 0.9999
