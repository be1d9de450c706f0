"""Blob store adapters: local filesystem (embedded default) and S3 with Object Lock."""
