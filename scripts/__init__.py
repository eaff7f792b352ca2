"""Thin entry points: the `kit` CLI and one-file scripts."""
