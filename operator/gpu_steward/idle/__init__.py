"""Idle policies end to end: the in-memory index, the per-pass evaluation, and its side effects."""
