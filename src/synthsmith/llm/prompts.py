"""Prompt templates live as files in synthsmith/prompts/; this renders them into chat messages."""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: resources.files("synthsmith.prompts").joinpath(name).read_text()),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def render(template: str, **values) -> list[dict]:
    """One user message from `prompts/<template>.j2`."""
    text = _environment().get_template(f"{template}.j2").render(**values).strip()
    return [{"role": "user", "content": text}]


def style_guide(style: str) -> str:
    return resources.files("synthsmith.prompts").joinpath(f"styles/{style}.md").read_text().strip()
