"""Per-endpoint concurrency and rate limits, and the retry policy for transient faults."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager

from aiolimiter import AsyncLimiter
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from synthsmith.contract.params import EndpointParams
from synthsmith.llm.transport import TransientError

BACKOFF = wait_random_exponential(multiplier=0.5, max=60)  # full jitter: retries from many calls spread out


class EndpointLimits:
    """At most `concurrency` calls in flight, `rpm` starts and `tpm` tokens per minute."""

    def __init__(self, endpoint: EndpointParams):
        import asyncio

        self.slots = asyncio.Semaphore(endpoint.concurrency)
        self.rpm = AsyncLimiter(endpoint.rpm, 60) if endpoint.rpm else None
        self.tpm = AsyncLimiter(endpoint.tpm, 60) if endpoint.tpm else None
        self.tpm_cap = endpoint.tpm or 0

    @asynccontextmanager
    async def slot(self, tokens: int):
        async with self.slots:
            if self.rpm:
                await self.rpm.acquire()
            if self.tpm:
                await self.tpm.acquire(min(tokens, self.tpm_cap))  # one call larger than tpm still goes, alone
            yield


def wait_for(state) -> float:
    """Jittered exponential backoff, but never sooner than the server's Retry-After."""
    exc = state.outcome.exception()
    backoff = BACKOFF(state)
    hint = getattr(exc, "retry_after_s", None)
    return max(backoff, hint) if hint is not None else backoff


def retrying(max_retries: int, on_retry: Callable) -> AsyncRetrying:
    return AsyncRetrying(stop=stop_after_attempt(max_retries + 1), retry=retry_if_exception_type(TransientError),
                         wait=wait_for, before_sleep=on_retry, reraise=True)
