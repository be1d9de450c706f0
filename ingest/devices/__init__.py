"""Recorder profiles: how to recognise a recorder and read its volume (data files, not code)."""
