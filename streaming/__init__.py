"""The runtime every ticktide process shares: bus, codec, processor loop, state, kernels, metrics, config, client.

Nothing here imports producers, consumers or the application (``ticktide``).
"""
