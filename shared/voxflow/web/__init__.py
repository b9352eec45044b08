"""Pieces both HTTP services share: errors, auth, sessions, health checks."""
