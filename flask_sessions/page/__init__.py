"""Perception and actions on one page (run on the host's loop)."""
