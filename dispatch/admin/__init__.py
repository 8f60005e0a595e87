"""The admin context."""
