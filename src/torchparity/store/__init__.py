"""The results store: every row of every run, with the versions that made it."""
