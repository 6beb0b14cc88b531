"""`python -m inference_client ...` is the `inference` command."""

from inference_client.cli import main

raise SystemExit(main())
