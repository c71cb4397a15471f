"""Example strategy plug-ins for the signals consumer (see consumers/signals/plugins.py)."""
