"""The offers context."""
