"""lakehook.query."""
