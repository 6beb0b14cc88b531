"""Business rules: the prediction state machine, batching, completion and authentication."""
