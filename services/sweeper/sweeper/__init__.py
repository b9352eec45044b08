"""The sweeper service: recovers lost work, retries webhooks, applies retention."""
