"""Prompt templates (`*.j2`) and statement style guides (`styles/*.md`), rendered by `llm.prompts`."""
