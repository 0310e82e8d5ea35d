"""nclayers."""
