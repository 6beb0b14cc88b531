"""A fixed, seeded corpus of mixed-length English-like texts (the same every run, no downloads)."""

from __future__ import annotations

import random

# The order matters: the seeded choices index into it, and committed results depend on the texts.
_VOCABULARY = (
    "the a model request batch queue endpoint latency throughput serverless lambda vector embedding sentence search "
    "cat guitar music river mountain city night coffee market price energy data cloud fast slow small large bright "
    "quiet open closed runs sleeps plays builds reads writes answers waits because although while after before under "
    "over between with without and or but not very quite"
)
_WORDS = _VOCABULARY.split()


def corpus(size: int = 512, seed: int = 13) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(size):
        # Mostly short queries, some paragraphs, a few past the model's 256-token limit.
        length = rng.choice([rng.randint(3, 12)] * 6 + [rng.randint(20, 80)] * 3 + [rng.randint(150, 320)])
        texts.append(" ".join(rng.choice(_WORDS) for _ in range(length)).capitalize() + ".")
    return texts
