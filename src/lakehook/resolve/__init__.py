"""lakehook.resolve."""
