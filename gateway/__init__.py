"""The WebSocket gateway: artisan and client sockets, live positions in Redis, and
pushes across processes. `gateway.routes.setup(app)` mounts it."""
