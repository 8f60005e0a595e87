"""The composition root: builds the app from `gateway` and the `dispatch` contexts,
and runs it (`zendo` CLI)."""
