"""lakehook.datagen."""
