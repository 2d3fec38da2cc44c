"""lakehook.lake."""
