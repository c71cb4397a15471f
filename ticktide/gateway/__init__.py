"""The gateway: live events over WebSocket, workflow jobs over REST, a live page — one process, one port.

- ``hub``: fan-out from the bus to connections with bounded per-connection queues;
- ``ws``: the ``/ws`` protocol (auth, subscribe/unsubscribe, limits, close codes);
- ``rest``: ``/workflows`` jobs; ``workflow``: the adapter to ``ticktide.workflow``;
- ``auth``: bearer tokens (constant-time checks, fingerprints in logs);
- ``openapi``: the published OpenAPI document; ``server``: the aiohttp app;
- ``commands``: ``ticktide gateway``.
"""
