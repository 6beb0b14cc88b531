"""Records and state machines: what a prediction, a batch and an API key are. Imported by all, importing none."""
