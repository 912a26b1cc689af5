"""The one LLM layer: content-addressed requests, a shipped cassette for replay, litellm for live calls."""

from synthsmith.llm.gateway import Gateway, ReplayMiss
from synthsmith.llm.requests import make_request, request_key

__all__ = ["Gateway", "ReplayMiss", "make_request", "request_key"]
