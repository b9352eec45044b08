"""What the tests use but do not test: servers, fakes and helpers shared by several folders.

- `servers`: the PostgreSQL and Redis the suite talks to (this machine's or embedded ones).
- `netguard`: blocks any connection beyond this machine (installed by tests/conftest.py).
- `served`: an app under a real uvicorn in a thread; `free_port`.
- `stackrun`: `voxflow run` as a child process, with a client of its APIs.
- `llm_vendors`: a local server speaking OpenAI's, Anthropic's and Mistral's protocols.
- `s3server`: moto's S3 server on loopback. `otlp`: an OTLP receiver for traces.
- `webhook_receiver`: a receiver of webhook deliveries. `webhooks`: delivery settings and
  the shared secret.
- `jobs`: jobs, transcripts and leases written straight to the database.
- `metrics`: scraping and reading Prometheus metrics.
"""
