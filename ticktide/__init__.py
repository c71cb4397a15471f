"""The application layer: the ``ticktide`` CLI, the demo, the historical workflow and the gateway.

It composes the layers below it (producers, consumers, streaming, schemas) and
nothing below imports it; ``lint-imports`` checks that.
"""
