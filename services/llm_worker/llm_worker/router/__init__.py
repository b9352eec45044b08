"""The LLM router: deployments, retries, fallbacks, breakers, cache and cost accounting."""
