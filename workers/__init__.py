"""Dramatiq actors: thin, idempotent wrappers around one service call each."""
