"""Consumers: one package per stage (features, signals, risk, portfolio, execution, alerts), independent of each other."""
