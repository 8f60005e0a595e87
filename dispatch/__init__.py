"""Zendo dispatch service: REST API, dispatch loop and the `zendo` CLI."""
