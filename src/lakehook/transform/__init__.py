"""lakehook.transform."""
