"""lakehook.observe."""
