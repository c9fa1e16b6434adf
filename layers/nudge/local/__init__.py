"""Local mode: the same handlers, the same event shapes, against an in-process moto server."""
