"""Model engines (vLLM, an OpenAI-compatible server, transformers) behind one small interface, used by
generation and by the AI judge."""
