"""Any OpenAI-compatible server (`vllm serve`, ...), with concurrent requests; openai is imported when used.

The server gets OPENAI_API_KEY with every request. Whoever runs a command holds the key already, so the
command line may name any server (`any_server`); a run started from a page, the API or a background job only
reaches the servers the operator lists in settings.OPENAI_BASE_URLS (PREFSTUDIO_OPENAI_BASE_URLS), checked
when the run is created, when the engine starts and again before every request it sends (a redirect
included). What a server answers with an error is not repeated: its status, and at most a short reason.
"""

import http
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from core.conversations import conversation_with_system
from core.errors import InputError
from core.options import OptionError
from llm.base import (
    PROMPT_CHAT,
    PROMPT_TEXT,
    BackendError,
    EngineOptions,
    GenerationRequest,
    GenerationResult,
    failed_result,
    request_text,
    too_long_result,
    top_logprobs_by_text,
)
from llm.provenance import model_revision_of

REASON_CHARS = 120  # a server's own reason for an error is cut to this
_TOKEN_LIKE = re.compile(r"(?=\S*\d)\S{20,}|sk-\S+")  # words that may be a key or a token


def base_url_normalised(url: str) -> str | None:
    """`scheme://host:port/path`, with the scheme and host in lower case, the port written out and no trailing
    slash, so that two spellings of one server compare equal. None for anything but a plain http(s) URL: one
    with credentials, a query, a fragment, spaces or backslashes (which parsers read differently) is refused."""
    if not url or "?" in url or "#" in url or any(c.isspace() or c == "\\" or not c.isprintable() for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        return None
    host = parts.hostname.rstrip(".")  # lower case already; "example.com." is the same host
    host = f"[{host}]" if ":" in host else host
    if port is None:
        port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def base_url_allowed(url: str) -> str | None:
    """The server `url` names, normalised, if the operator allows it (settings.OPENAI_BASE_URLS); else None.
    Servers are compared whole: no prefix of an allowed one, and no longer name starting with it, is allowed."""
    normalised = base_url_normalised(url)
    allowed = {base_url_normalised(entry) for entry in settings.OPENAI_BASE_URLS} - {None}
    return normalised if normalised in allowed else None


def base_url_problems(url: str) -> list[str]:
    """[] if a caller without the key may send requests to `url`; else why not, naming `base_url` and the
    setting to change."""
    if base_url_allowed(url):
        return []
    allowed = settings.OPENAI_BASE_URLS
    return [
        f"`base_url` {url} is not a server this site may send requests to: it sends them (with its OPENAI_API_KEY) "
        "only to the servers the PREFSTUDIO_OPENAI_BASE_URLS setting lists, "
        + (f"which are: {', '.join(allowed)}." if allowed else "and it lists none.")
        + " Use one of those, or ask the operator to add this one (manage.py generate_pairs may use any)."
    ]


def _requests_only_under(base_url: str) -> Callable[[Any], None]:
    """An HTTP client hook that stops any request (a redirect's too) that leaves the allowed server, before it
    is sent: the last check between the key and another server, whatever parsed the URL before."""

    def check(request: Any) -> None:
        url = request.url
        host = f"[{url.host}]" if ":" in url.host else url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        target = f"{url.scheme}://{host}:{port}{url.path}"
        if not target.startswith(base_url + "/") or ".." in url.path.split("/"):
            raise BackendError(
                f"A request to {url.scheme}://{host}:{port} was stopped before it was sent: it left the server "
                f"{base_url}, the only one this run may reach (PREFSTUDIO_OPENAI_BASE_URLS)."
            )

    return check


def error_worded(error: Exception, *, timeout: float) -> str:
    """What a failed request says: `HTTP 401 from the server (Unauthorized)` and at most a short reason of the
    server's own, never its body as it is (it may quote the key, or come from a service that is no model
    server). Auth errors give no reason at all: what they would say is about the key."""
    import openai

    if isinstance(error, openai.APIStatusError):
        code = error.status_code
        try:
            words = f"HTTP {code} from the server ({http.HTTPStatus(code).phrase})"
        except ValueError:
            words = f"HTTP {code} from the server"
        reason = error.body.get("message") if isinstance(error.body, dict) else None
        if code in (401, 403, 407) or not isinstance(reason, str) or not reason.strip():
            return words
        return f"{words}: {reason_sanitised(reason)}"
    if isinstance(error, openai.APITimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(error, openai.APIConnectionError):
        return "the connection failed"
    return "its answer could not be read"


def reason_sanitised(reason: str) -> str:
    """A server's reason on one line, printable, with anything that looks like a key or token blanked out (the
    API key itself always), at most REASON_CHARS long."""
    key = os.environ.get("OPENAI_API_KEY", "")
    words = ["[redacted]" if (key and key in word) or _TOKEN_LIKE.fullmatch(word) else word for word in reason.split()]
    text = "".join(c for c in " ".join(words) if c.isprintable())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


class OpenAIBackend:
    """Requests to an OpenAI-compatible server; the API key comes from OPENAI_API_KEY (vllm serve needs none).

    `openai_api="auto"` uses the chat API, and switches to the completions API (with the plain prompt)
    for good when the server says the model has no chat template. A prompt the server finds longer than
    the context comes back as PROMPT_TOO_LONG. Unless `any_server` (the command line), only a server in
    settings.OPENAI_BASE_URLS is reached, and every request is checked against it before it is sent.
    """

    name = "openai"

    def __init__(self, *, model: str, options: EngineOptions = EngineOptions(), any_server: bool = False) -> None:
        import openai

        if not options.base_url:
            raise InputError("The openai backend needs --base-url, e.g. http://127.0.0.1:8000/v1.")
        if any_server:
            base_url, http_client = options.base_url, None
        else:
            # Checked when the run was created too, but the setting may have changed since.
            problems = base_url_problems(options.base_url)
            if problems:
                raise OptionError(problems, options=EngineOptions)
            base_url = base_url_allowed(options.base_url)
            http_client = openai.DefaultHttpxClient(event_hooks={"request": [_requests_only_under(base_url)]})
        self.client = openai.OpenAI(
            base_url=base_url,
            api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY",
            timeout=options.request_timeout,
            max_retries=2,
            http_client=http_client,
        )
        self.timeout = options.request_timeout
        try:
            served = {m.id: m for m in self.client.models.list()}
        except openai.APIConnectionError:
            raise InputError(f"No OpenAI-compatible server answers at {options.base_url}: is it running?") from None
        except openai.APIError as error:
            raise InputError(
                f"{options.base_url}/models: {error_worded(error, timeout=self.timeout)}. Is it an OpenAI-compatible "
                "server, and OPENAI_API_KEY its key?"
            ) from None
        if model not in served:
            raise InputError(
                f"The server at {options.base_url} does not serve {model!r}; it serves: {', '.join(served)}."
            )
        # vLLM says which folder it serves; fingerprint it when that folder is a model folder on this machine too.
        root = getattr(served[model], "root", None) or ""
        here = bool(root) and (Path(root).expanduser() / "config.json").is_file()
        self.model_name = model
        self.model_revision = options.revision or (model_revision_of(root) if here else "")
        self.concurrency = options.concurrency
        self.use_chat = options.openai_api != "completions"
        self.auto = options.openai_api == "auto"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Results in the order of the requests. A request the server failed or refused comes back as a
        REQUEST_FAILED result with the reason, so the ones that succeeded are kept."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one_or_failed, requests))

    def _one_or_failed(self, request: GenerationRequest) -> GenerationResult:
        try:
            return self._one(request)
        except BackendError as error:
            return failed_result(error.message)

    def _one(self, request: GenerationRequest, *, may_use_chat: bool = True) -> GenerationResult:
        import openai

        try:
            if may_use_chat and self.use_chat and request.prompt is None:
                return self._chat(request)
            return self._completion(request)
        except openai.BadRequestError as error:
            message = str(error.message)  # read here, never passed on
            if "context length" in message or getattr(error, "param", None) == "input_tokens":
                return too_long_result(0)
            if self.auto and may_use_chat and "chat template" in message:
                self.use_chat = False  # for good; requests in flight meanwhile land here too
                return self._one(request, may_use_chat=False)
            raise BackendError(
                f"The server refused a request for {self.model_name!r}: {error_worded(error, timeout=self.timeout)}"
            ) from None
        except openai.APIError as error:
            raise BackendError(
                f"The server failed a request for {self.model_name!r}: {error_worded(error, timeout=self.timeout)}"
            ) from None

    def _sampling_kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        s = request.sampling
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        return kwargs

    def _chat(self, request: GenerationRequest) -> GenerationResult:
        kwargs = self._sampling_kwargs(request)
        if request.sampling.logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.sampling.logprobs)
        response = self.client.chat.completions.create(
            messages=conversation_with_system(list(request.messages), request.system), **kwargs
        )
        choice = response.choices[0]
        top = None
        if choice.logprobs is not None and choice.logprobs.content is not None:
            top = [
                top_logprobs_by_text({t.token: t.logprob for t in position.top_logprobs})
                for position in choice.logprobs.content
            ]
        return GenerationResult(
            text=choice.message.content or "",
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
            finish_reason=choice.finish_reason or "",
            top_logprobs=top,
            prompt_format=PROMPT_CHAT,  # the server rendered the conversation through the model's chat template
        )

    def _completion(self, request: GenerationRequest) -> GenerationResult:
        kwargs = self._sampling_kwargs(request)
        if request.sampling.logprobs:
            kwargs["logprobs"] = request.sampling.logprobs
        prompt = request_text(request)
        response = self.client.completions.create(prompt=prompt, **kwargs)
        choice = response.choices[0]
        top = None
        if choice.logprobs is not None and choice.logprobs.top_logprobs is not None:
            top = [top_logprobs_by_text(position or {}) for position in choice.logprobs.top_logprobs]
        return GenerationResult(
            text=choice.text or "",
            prompt_tokens=response.usage.prompt_tokens if response.usage else 0,
            completion_tokens=response.usage.completion_tokens if response.usage else 0,
            finish_reason=choice.finish_reason or "",
            top_logprobs=top,
            prompt_format=PROMPT_TEXT,
            prompt_text=prompt,
        )

    def close(self) -> None:
        self.client.close()
