"""steering stage."""
