"""How a round's steps get their engines: `Engines(model, options)` returns a started backend, which the step
closes when it is done with it.

By default that is `llm.base.backend_load`. Tests and proofs pass their own (fakes, or an engine they started
once and share: wrap it in `KeptOpen` so that no step closes it). With vLLM, keep open every engine started
beside a shared one and close them all together at the end: closing one vLLM engine breaks the others alive
in the process (see VllmBackend.close). The default is safe: each step closes the engines it started together.
"""

from collections.abc import Sequence

from generation.services import Engines, engines_default
from llm.base import Backend, GenerationRequest, GenerationResult

__all__ = ["Engines", "KeptOpen", "engines_default"]


class KeptOpen:
    """An engine someone else owns: the steps use it, and its close() leaves it running."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name
        self.model_name = backend.model_name
        self.model_revision = backend.model_revision
        if (stream := getattr(backend, "stream", None)) is not None:
            self.stream = stream  # the engine's own stream (vLLM), which `llm.base.results_stream` looks for

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self.backend.generate(requests)

    def close(self) -> None:
        pass
