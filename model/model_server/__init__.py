"""The SageMaker inference container: GET /ping, POST /invocations on port 8080, batched sentence embeddings."""
