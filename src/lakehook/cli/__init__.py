"""lakehook.cli."""
