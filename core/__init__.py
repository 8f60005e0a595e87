"""The shared core: what `gateway` and every `dispatch` context build on.

Settings, errors, typed app keys and the ports between layers, Redis key names,
PostgreSQL helpers, token verification, domain constants, metrics and the one
outbox. It imports `matching` and nothing else of the project.
"""
