"""Generating clips: the Backend protocol, choosing one by name, shot events, the offline preview,
the early start, and one package per paid service (fal today)."""
