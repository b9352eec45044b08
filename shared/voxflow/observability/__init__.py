"""Observability: traces (tracing.py), metrics and logs shared by every Voxflow process."""
