"""Generating clips: the Backend protocol, choosing one by name, shot events, the offline preview,
the early start, continuity (a shot's frames, resolved before it is generated), and one package
per paid service (fal today)."""
