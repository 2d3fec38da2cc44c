"""lakehook.stream."""
