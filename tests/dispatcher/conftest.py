"""The dispatcher tests run on the dispatch timings (tests/world.py)."""

from tests.world import dispatch_settings  # noqa: F401  (overrides `settings` here)
