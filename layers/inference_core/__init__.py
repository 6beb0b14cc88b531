"""Shared code for every Lambda function of the inference backend (deployed as one layer)."""
