"""A local HTTP server speaking OpenAI's, Anthropic's and Mistral's wire protocols, for tests.

One server answers every vendor under its own path prefix, so each official SDK can be
pointed at it with `base_url=server.url(vendor)`:

    openai              POST /openai/v1/chat/completions             (base URL .../openai/v1)
    openai_compatible   POST /openai_compatible/v1/chat/completions  (a vLLM-like server)
    anthropic           POST /anthropic/v1/messages                  (base URL .../anthropic)
    mistral             POST /mistral/v1/chat/completions            (base URL .../mistral)

Replies are scripted per vendor as vendor-neutral `Reply` values (`ok()`, `rate_limited()`,
`overloaded()`...) and rendered in that vendor's own body and header format when served.
Each vendor takes queued replies first (FIFO), then its sticky reply if set, then a default
success that echoes the first words of the last user message. Every request is recorded.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Self

VENDORS: Final = ("openai", "openai_compatible", "anthropic", "mistral")
_BASE_PATHS: Final = {
    "openai": "/openai/v1",
    "openai_compatible": "/openai_compatible/v1",
    "anthropic": "/anthropic",
    "mistral": "/mistral",
}
_ENDPOINTS: Final = {
    "openai": "/openai/v1/chat/completions",
    "openai_compatible": "/openai_compatible/v1/chat/completions",
    "anthropic": "/anthropic/v1/messages",
    "mistral": "/mistral/v1/chat/completions",
}
ECHO_WORDS: Final = 8
_ids = itertools.count(1)


@dataclass(frozen=True)
class Reply:
    """One scripted answer, rendered in the format of the vendor that serves it."""

    kind: str = "ok"  # ok, rate_limited, server_error, overloaded, context_too_long, auth,
    # refused, bad_request, malformed or raw
    text: str | None = None  # ok: the answer (None: echo the request); errors: the message
    tokens_in: int | None = None  # None: words in the request's messages
    tokens_out: int | None = None  # None: words in the answer
    model: str | None = None  # None: the model the request named
    status: int | None = None  # None: the vendor's usual status for this kind
    variant: str = ""  # refused: stop/field/error; malformed: truncated/missing_fields/html
    retry_after: str | None = None
    retry_after_ms: str | None = None
    delay: float = 0.0  # seconds to wait before answering (timeouts)
    body: bytes = b""  # raw only
    headers: Mapping[str, str] = field(default_factory=dict)


def ok(
    text: str | None = None,
    *,
    tokens_in: int | None = None,
    tokens_out: int | None = None,
    model: str | None = None,
) -> Reply:
    """A successful completion (`text` None: echo the first words of the user message)."""
    return Reply(text=text, tokens_in=tokens_in, tokens_out=tokens_out, model=model)


def _seconds(value: float | str | None) -> str | None:
    return value if value is None or isinstance(value, str) else f"{value:g}"


def rate_limited(
    retry_after: float | str | None = 1, *, retry_after_ms: float | None = None
) -> Reply:
    """HTTP 429 with a Retry-After header (seconds, or an HTTP date given as str)."""
    return Reply(
        kind="rate_limited",
        retry_after=_seconds(retry_after),
        retry_after_ms=_seconds(retry_after_ms),
    )


def server_error(status: int = 500, *, retry_after: float | None = None) -> Reply:
    """A 5xx in the vendor's error format."""
    return Reply(kind="server_error", status=status, retry_after=_seconds(retry_after))


def overloaded(*, retry_after: float | None = None) -> Reply:
    """Over capacity: Anthropic's 529 overloaded_error, 503 elsewhere."""
    return Reply(kind="overloaded", retry_after=_seconds(retry_after))


def context_too_long() -> Reply:
    """The vendor's 400 for a prompt longer than the model's context window."""
    return Reply(kind="context_too_long")


def auth_error() -> Reply:
    """The vendor's 401 for a bad API key."""
    return Reply(kind="auth")


def refused(variant: str = "stop") -> Reply:
    """A refusal: "stop" (finish/stop reason), "field" (OpenAI's message.refusal) or "error"
    (OpenAI's 400 content_policy_violation); Mistral always answers its 403 guardrail block."""
    return Reply(kind="refused", variant=variant)


def bad_request(message: str | None = None) -> Reply:
    """Some other 400 in the vendor's format."""
    return Reply(kind="bad_request", text=message)


def malformed(variant: str = "truncated") -> Reply:
    """A 200 that is not a usable answer: truncated JSON, missing fields, or an HTML page."""
    return Reply(kind="malformed", variant=variant)


def slow(seconds: float, then: Reply | None = None) -> Reply:
    """`then` (default: success) after `seconds`, to trip a client's timeout."""
    return dataclasses.replace(then or ok(), delay=seconds)


def raw(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> Reply:
    """Exactly this status, body and headers."""
    return Reply(kind="raw", status=status, body=body, headers=dict(headers or {}))


@dataclass(frozen=True)
class RecordedRequest:
    """A request as the server received it (header names lower-cased)."""

    vendor: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or None when the body was not JSON
    raw: bytes


class VendorServer:
    """The vendors' APIs on 127.0.0.1 (random port), served from a background thread."""

    def __init__(self, api_key: str = "test-key", *, keyless: tuple[str, ...] = ()) -> None:
        # None: accept any key, like a vLLM started without --api-key.
        self.keys: dict[str, str | None] = {
            vendor: None if vendor in keyless else api_key for vendor in VENDORS
        }
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Reply]] = {vendor: deque() for vendor in VENDORS}
        self._sticky: dict[str, Reply | None] = dict.fromkeys(VENDORS)
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, vendor: str) -> str:
        """The base URL to give the vendor's SDK."""
        return f"http://127.0.0.1:{self.port}{_BASE_PATHS[vendor]}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in slow replies
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def enqueue(self, vendor: str, *replies: Reply) -> None:
        """Answer the vendor's next requests with these replies, in order."""
        with self._lock:
            self._queues[vendor].extend(replies)

    def set_sticky(self, vendor: str, reply: Reply | None) -> None:
        """Answer with `reply` whenever the queue is empty (None: back to the default)."""
        with self._lock:
            self._sticky[vendor] = reply

    def reset(self) -> None:
        """Forget queued and sticky replies and recorded requests."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._sticky = dict.fromkeys(VENDORS)
            self._requests.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, vendor: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.vendor == vendor]

    def _next_reply(self, vendor: str) -> Reply:
        with self._lock:
            queue = self._queues[vendor]
            return queue.popleft() if queue else self._sticky[vendor] or ok()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _authorised(self, vendor: str, headers: Mapping[str, str]) -> bool:
        expected = self.keys[vendor]
        if expected is None:
            return True
        bearer = headers.get("authorization") == f"Bearer {expected}"
        if vendor == "anthropic":  # SDK 2.x sends a Bearer token; x-api-key is still accepted
            return bearer or headers.get("x-api-key") == expected
        return bearer

    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def closed_port_url(vendor: str) -> str:
    """A base URL on a loopback port nothing listens on (connection refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{_BASE_PATHS[vendor]}"


def _handler_for(server: VendorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
        timeout = 10  # idle keep-alive connections are closed after this
        # Headers and body go out in separate writes; without TCP_NODELAY the second waits
        # for the client's delayed ACK (about 40 ms), as no real vendor's server would.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            data = self.rfile.read(length)
            if server._stopping.is_set():
                # Stopped: kept-alive connections die too, as when a vendor goes down.
                self.close_connection = True
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            try:
                body: Any = json.loads(data)
            except ValueError:
                body = None
            path = self.path.split("?", 1)[0]
            vendor = next((v for v, p in _ENDPOINTS.items() if p == path), None)
            if vendor is None:
                self._send(404, {"content-type": "application/json"}, b'{"error": "no route"}')
                return
            server._record(RecordedRequest(vendor, "POST", self.path, headers, body, data))
            if vendor == "anthropic" and "anthropic-version" not in headers:
                message = "anthropic-version: header is required"
                reply = Reply(kind="bad_request", text=message)
            elif not server._authorised(vendor, headers):
                reply = auth_error()
            else:
                reply = server._next_reply(vendor)
            if reply.delay:
                server._wait(reply.delay)
            self._send(*render(vendor, reply, body if isinstance(body, dict) else {}, headers))

        def _send(self, status: int, headers: Mapping[str, str], payload: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output clean

    return Handler


# ---- rendering: each vendor's real body and header format ------------------------------------


def _messages_text(request: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(role, text) for the request's messages and, for Anthropic, its system prompt."""
    pairs: list[tuple[str, str]] = []
    system = request.get("system")
    if isinstance(system, str):
        pairs.append(("system", system))
    for message in request.get("messages") or []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):  # content blocks
            content = " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
        pairs.append((str(message.get("role")), str(content or "")))
    return pairs


def _wants_json(vendor: str, request: Mapping[str, Any]) -> bool:
    if vendor == "anthropic":
        return "JSON" in str(request.get("system") or "")
    response_format = request.get("response_format")
    return isinstance(response_format, dict) and response_format.get("type") == "json_object"


def echo_text(vendor: str, request: Mapping[str, Any]) -> str:
    """The default answer: the first words of the last user message (as JSON if asked)."""
    users = [text for role, text in _messages_text(request) if role == "user"]
    words = " ".join(users[-1].split()[:ECHO_WORDS]) if users else ""
    return json.dumps({"echo": words}) if _wants_json(vendor, request) else f"Echo: {words}"


def _family(vendor: str) -> str:
    return "openai" if vendor == "openai_compatible" else vendor


def render(
    vendor: str, reply: Reply, request: Mapping[str, Any], request_headers: Mapping[str, str]
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of `reply` as `vendor` would send them."""
    family = _family(vendor)
    headers = {"content-type": "application/json", **_id_headers(family)}
    if reply.retry_after is not None:
        headers["retry-after"] = reply.retry_after
    if reply.retry_after_ms is not None:
        headers["retry-after-ms"] = reply.retry_after_ms
    headers.update(reply.headers)
    if reply.kind == "raw":
        return reply.status or 200, headers, reply.body
    model = reply.model or str(request.get("model") or "unknown-model")
    if reply.kind == "malformed":
        return _malformed(family, reply.variant, model, headers)
    if reply.kind == "ok" or (reply.kind == "refused" and _refusal_is_success(family, reply)):
        text = echo_text(vendor, request) if reply.text is None else reply.text
        words_in = sum(len(text.split()) for _, text in _messages_text(request))
        tokens_in = words_in if reply.tokens_in is None else reply.tokens_in
        tokens_out = len(text.split()) if reply.tokens_out is None else reply.tokens_out
        body = _SUCCESS[family](model, text, tokens_in, tokens_out, reply)
        return 200, headers, json.dumps(body).encode()
    status, body = _ERRORS[family](reply, model, request_headers)
    return reply.status or status, headers, json.dumps(body).encode()


def _id_headers(family: str) -> dict[str, str]:
    token = uuid.uuid4().hex
    if family == "anthropic":
        return {"request-id": f"req_{token}", "anthropic-organization-id": str(uuid.UUID(int=1))}
    if family == "mistral":
        return {"mistral-correlation-id": str(uuid.uuid4()), "x-kong-request-id": token}
    return {
        "x-request-id": f"req_{token}",
        "openai-processing-ms": "12",
        "openai-version": "2020-10-01",
    }


def _refusal_is_success(family: str, reply: Reply) -> bool:
    # Refusals arrive as 200s, except OpenAI's 400 "error" variant and Mistral's 403 guardrail.
    return family == "anthropic" or (family == "openai" and reply.variant != "error")


def _openai_success(model: str, text: str, tokens_in: int, tokens_out: int, reply: Reply) -> Any:
    content: str | None = text
    refusal: str | None = None
    finish_reason = "stop"
    if reply.kind == "refused":
        content = None
        if reply.variant == "field":
            refusal = "I'm sorry, but I can't help with that request."
        else:
            finish_reason = "content_filter"
    return {
        "id": f"chatcmpl-{next(_ids):020d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": refusal,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_vendorsrv",
    }


def _anthropic_success(model: str, text: str, tokens_in: int, tokens_out: int, reply: Reply) -> Any:
    is_refusal = reply.kind == "refused"
    return {
        "id": f"msg_{next(_ids):024d}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if is_refusal else [{"type": "text", "text": text, "citations": None}],
        "stop_reason": "refusal" if is_refusal else "end_turn",
        "stop_sequence": None,
        "stop_details": {"type": "refusal", "category": "cyber", "explanation": "Policy."}
        if is_refusal
        else None,
        "usage": {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }


def _mistral_success(model: str, text: str, tokens_in: int, tokens_out: int, reply: Reply) -> Any:
    del reply
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "usage": {
            "prompt_tokens": tokens_in,
            "completion_tokens": tokens_out,
            "total_tokens": tokens_in + tokens_out,
        },
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
    }


def _masked(headers: Mapping[str, str]) -> str:
    key = headers.get("authorization", "").removeprefix("Bearer ")
    return f"{key[:3]}{'*' * 8}{key[-4:]}" if len(key) > 8 else "***"


def _openai_error(reply: Reply, model: str, headers: Mapping[str, str]) -> tuple[int, Any]:
    errors: dict[str, tuple[int, str, str, str | None, str | None]] = {
        "rate_limited": (
            429,
            f"Rate limit reached for {model} in organization org-vendorsrv on requests per min "
            "(RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.",
            "requests",
            None,
            "rate_limit_exceeded",
        ),
        "server_error": (
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        ),
        "overloaded": (
            503,
            "The server is overloaded or not ready yet.",
            "server_error",
            None,
            None,
        ),
        "context_too_long": (
            400,
            "This model's maximum context length is 128000 tokens. However, your messages "
            "resulted in 131072 tokens. Please reduce the length of the messages.",
            "invalid_request_error",
            "messages",
            "context_length_exceeded",
        ),
        "auth": (
            401,
            f"Incorrect API key provided: {_masked(headers)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            "invalid_api_key",
        ),
        "refused": (
            400,
            "Your request was rejected as a result of our safety system. Your prompt may "
            "contain text that is not allowed by our safety system.",
            "invalid_request_error",
            None,
            "content_policy_violation",
        ),
        "bad_request": (
            400,
            "Invalid value for 'temperature': expected a decimal, but got a string instead.",
            "invalid_request_error",
            "temperature",
            "invalid_type",
        ),
    }
    status, message, kind, param, code = errors[reply.kind]
    body = {"message": reply.text or message, "type": kind, "param": param, "code": code}
    return status, {"error": body}


def _anthropic_error(reply: Reply, model: str, headers: Mapping[str, str]) -> tuple[int, Any]:
    del headers
    errors: dict[str, tuple[int, str, str]] = {
        "rate_limited": (
            429,
            "rate_limit_error",
            "This request would exceed the rate limit for your organization of 50 requests "
            f"per minute for {model}. Please try again later.",
        ),
        "server_error": (500, "api_error", "Internal server error"),
        "overloaded": (529, "overloaded_error", "Overloaded"),
        "context_too_long": (
            400,
            "invalid_request_error",
            "prompt is too long: 215833 tokens > 200000 maximum",
        ),
        "auth": (401, "authentication_error", "invalid x-api-key"),
        "bad_request": (400, "invalid_request_error", "max_tokens: Field required"),
    }
    status, kind, message = errors[reply.kind]
    request_id = f"req_{uuid.uuid4().hex}"
    error = {"type": kind, "message": reply.text or message}
    return status, {"type": "error", "error": error, "request_id": request_id}


def _mistral_error(reply: Reply, model: str, headers: Mapping[str, str]) -> tuple[int, Any]:
    del headers
    if reply.kind == "auth":
        return 401, {"message": "Unauthorized", "request_id": uuid.uuid4().hex}
    if reply.kind == "refused":  # custom guardrails block with 403
        error = {"message": "Content blocked by guardrail", "status": 403}
        moderation = {"blocked": True, "categories": {"violence_and_threats": True}}
        return 403, {"error": error, "guardrails": {"results": {"moderation_llm_v2": moderation}}}
    errors: dict[str, tuple[int, str, str, str]] = {
        "rate_limited": (429, "Rate limit exceeded", "rate_limited", "1300"),
        "server_error": (500, "Internal server error", "internal_server_error", "1000"),
        "overloaded": (503, "Service unavailable", "service_unavailable", "1001"),
        "context_too_long": (
            400,
            "Prompt contains 140012 tokens, too large for model with 131072 maximum context length",
            "invalid_request_message_error",
            "3051",
        ),
        "bad_request": (400, f"Invalid model: {model}", "invalid_model", "1500"),
    }
    status, message, kind, code = errors[reply.kind]
    body = {"object": "error", "message": reply.text or message, "type": kind, "param": None}
    return status, {**body, "code": code, "raw_status_code": status}


def _malformed(
    family: str, variant: str, model: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    if variant == "html":
        headers["content-type"] = "text/html; charset=utf-8"
        return 200, headers, b"<html><body><h1>Service temporarily unavailable</h1></body></html>"
    complete = _SUCCESS[family](model, "Half an answer", 3, 3, ok())
    if variant == "missing_fields":
        dropped = ("content", "stop_reason") if family == "anthropic" else ("choices",)
        body = {key: value for key, value in complete.items() if key not in dropped}
        return 200, headers, json.dumps(body).encode()
    text = json.dumps(complete).encode()
    return 200, headers, text[: len(text) // 2]


_SUCCESS: Final = {
    "openai": _openai_success,
    "anthropic": _anthropic_success,
    "mistral": _mistral_success,
}
_ERRORS: Final = {"openai": _openai_error, "anthropic": _anthropic_error, "mistral": _mistral_error}
