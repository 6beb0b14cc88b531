"""`serve`: what SageMaker runs in the container. One process, one model copy per GPU."""

from __future__ import annotations

import logging

import uvicorn

from model_server.config import ServerConfig
from model_server.server import create_app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = ServerConfig.from_env()
    # A single worker: a second would load a second copy of the model onto the same GPU.
    # All interfaces (S104): SageMaker reaches the container from outside it.
    uvicorn.run(create_app(config), host="0.0.0.0", port=config.port, workers=1, timeout_keep_alive=75)  # noqa: S104


if __name__ == "__main__":
    main()
