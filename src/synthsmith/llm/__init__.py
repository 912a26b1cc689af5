"""The one LLM layer: content-addressed requests (`requests`), a shipped cassette for replay, live calls
through litellm or a lean OpenAI-compatible client (`gateway`), prompt templates (`prompts`), and
the format checks that pull structured parts out of answers (`answers`)."""
