"""The runtime every ticktide process shares: bus, codec, processor loop, state, kernels, metrics, CLI."""
