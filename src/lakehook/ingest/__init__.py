"""lakehook.ingest."""
