"""OpenAI's speech API on Voxflow's jobs: `POST /v1/audio/transcriptions` and `/v1/models`.

Clients built for OpenAI (its SDKs, Open WebUI, LibreChat, n8n) take a base URL: pointed at
`http://host:8000/v1`, they transcribe through Voxflow. A transcription is an ordinary job of
the caller's tenant, with the job API's validation, limits, storage, queue, micro-batching
and retention; the request waits for it (at most `VOXFLOW_OPENAI_WAIT_SECONDS`) and answers
in OpenAI's shapes. The job's id comes back in `X-Voxflow-Job-Id`.

Errors on these routes use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
with the statuses its SDKs map to their exceptions (docs/openai.md).

The modules: `routes` (the endpoints), `request` (OpenAI's form fields read into a job's
options), `errors` (the error shape and the route class that applies it), `model_list` (the
models offered), `responses` (the transcript in each `response_format`) and `streaming`
(the Server-Sent Events of `stream=true`).
"""

from ingest_api.openai_compat.routes import router

__all__ = ["router"]
