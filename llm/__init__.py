"""Model engines (vLLM, an OpenAI-compatible server, transformers) behind one small interface, used by
generation and by the AI judge.

`base` holds the interface, the request and result types, `EngineOptions` and `backend_load`; each engine
has its module (`vllm_engine`, `openai_engine`, `transformers_engine`), which loads its heavy packages only
when an engine starts; `cli` adds the engine options to a management command."""
