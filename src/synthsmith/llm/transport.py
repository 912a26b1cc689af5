"""One chat completion over the wire, with every failure sorted into retry or give up.

Two transports behind one interface (`send`): litellm, which reaches every provider, and a lean
aiohttp client for OpenAI-compatible servers (vLLM, SGLang), where litellm's per-request CPU cost
caps throughput on a small machine. Neither retries by itself: `gateway` owns retries, so it can
count them, honour Retry-After and stay within the budget.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass

from synthsmith.contract.params import EndpointParams, UserError


@dataclass(frozen=True)
class Reply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    served_model: str


class TransientError(Exception):
    """Worth retrying: 429, 5xx, timeout, dropped connection, a 200 whose body is unusable."""

    def __init__(self, reason: str, retry_after_s: float | None = None):
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


class FatalError(Exception):
    """Cannot succeed by asking again (bad request, auth, unknown model): fail fast."""


def retry_after(headers) -> float | None:
    value = (headers or {}).get("Retry-After") or (headers or {}).get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from model servers; the backoff applies instead


def api_key(endpoint: EndpointParams) -> str | None:
    if endpoint.api_key_env is None:
        return "none" if endpoint.api_base else None  # self-hosted servers take any key; SDKs insist on one
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise UserError(f"environment variable {endpoint.api_key_env} (llm api_key_env) is not set")
    return key


class OpenAITransport:
    """POST {api_base}/chat/completions with one shared aiohttp session."""

    def __init__(self, endpoint: EndpointParams):
        import aiohttp

        self._aiohttp = aiohttp
        self.url = endpoint.api_base.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key(endpoint)}", "Content-Type": "application/json"}
        self.timeout = aiohttp.ClientTimeout(total=endpoint.timeout_s)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=endpoint.concurrency, ttl_dns_cache=300), timeout=self.timeout)

    async def send(self, model: str, messages: list[dict], sampling: dict) -> Reply:
        aiohttp = self._aiohttp
        body = json.dumps({"model": model, "messages": messages, **sampling})
        try:
            async with self.session.post(self.url, data=body, headers=self.headers) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except asyncio.TimeoutError:
            raise TransientError("timeout") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise TransientError(f"connection: {type(exc).__name__}") from None
        if status == 429 or status >= 500:
            raise TransientError(f"http {status}", retry_after(headers))
        if status >= 400:
            raise FatalError(f"http {status} from {self.url}: {_error_message(raw)}")
        try:
            payload = json.loads(raw)
            choice = payload["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise TransientError("unreadable body") from None
        if not content:
            raise TransientError("empty content")
        usage = payload.get("usage") or {}
        return Reply(content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0),
                     str(payload.get("model") or model))

    async def close(self) -> None:
        await self.session.close()


def load_litellm():
    """litellm, imported on first use (seconds: only live runs pay it), its price map read from the
    package, and quiet: it prints a "Provider List" banner on stdout whenever it cannot place a
    model, even when we only asked for a price or our own transport served the call."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class LiteLLMTransport:
    """litellm.acompletion with its own retries off; its exception classes sorted into ours."""

    def __init__(self, endpoint: EndpointParams):
        self.litellm, self.endpoint, self.key = load_litellm(), endpoint, api_key(endpoint)

    async def send(self, model: str, messages: list[dict], sampling: dict) -> Reply:
        litellm = self.litellm
        try:
            response = await litellm.acompletion(
                model=model, messages=messages, api_base=self.endpoint.api_base, api_key=self.key,
                custom_llm_provider="openai" if self.endpoint.api_base else None,
                timeout=self.endpoint.timeout_s, num_retries=0, max_retries=0, **sampling)
        except (litellm.BadRequestError, litellm.AuthenticationError, litellm.PermissionDeniedError,
                litellm.NotFoundError) as exc:
            raise FatalError(f"{type(exc).__name__}: {str(exc)[:300]}") from None
        except litellm.RateLimitError as exc:
            raise TransientError("http 429", retry_after(getattr(getattr(exc, "response", None), "headers", None))) \
                from None
        except Exception as exc:  # noqa: BLE001 - timeouts, connection errors, 5xx, unparseable bodies
            raise TransientError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        content = response.choices[0].message.content
        if not content:
            raise TransientError("empty content")
        usage = getattr(response, "usage", None)
        return Reply(content, int(getattr(usage, "prompt_tokens", 0) or 0),
                     int(getattr(usage, "completion_tokens", 0) or 0), str(response.model or model))

    async def close(self) -> None:
        return None


def make_transport(endpoint: EndpointParams):
    lean = endpoint.transport == "openai" or (endpoint.transport == "auto" and endpoint.api_base is not None)
    if lean and endpoint.api_base is None:
        raise UserError("llm endpoint with transport: openai needs an api_base")
    return OpenAITransport(endpoint) if lean else LiteLLMTransport(endpoint)


def _error_message(raw: bytes) -> str:
    try:
        return str(json.loads(raw)["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return raw[:300].decode("utf-8", errors="replace")
