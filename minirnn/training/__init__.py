"""The training room: the loop, its presets, checkpoints and the one file writer, the run lock,
signals, the save-worthiness watch, size limits and the MPI wrapper."""
