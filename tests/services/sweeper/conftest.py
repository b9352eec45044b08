"""Fixtures of these tests: committed finished jobs with a webhook URL."""

from tests.support.webhooks import finished

__all__ = ["finished"]
