"""Generating clips: one package per paid service (fal today); the offline preview lives apart."""
