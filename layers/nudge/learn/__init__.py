"""Train-time code (numpy, scikit-learn): imported by the train function, local mode and
the CLI only, never by the functions on the event path (their layer has no numpy)."""
