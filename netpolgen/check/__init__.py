"""Checking policies against traffic and against each other: verify, diff, migrate, effect."""
