"""The artisans context."""
