"""The HTTP surface: the OpenAI-compatible endpoints clients call."""
