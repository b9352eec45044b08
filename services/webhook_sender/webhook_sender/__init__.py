"""The webhook sender: the Celery worker of the `webhooks` queue, which sends job webhooks."""
