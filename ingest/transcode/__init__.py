"""Proxy and thumbnail generation with ffmpeg (the original is never touched)."""
