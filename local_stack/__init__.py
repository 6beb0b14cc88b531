"""Runs the whole pipeline on one machine: moto server, the API, Lambda-like pumps and a local SageMaker endpoint."""
