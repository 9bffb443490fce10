"""Prompts as conversations: one shape for every source (import files, generation prompts, the API).

A prompt is a list of {"role", "content"} messages ending with a user turn, plus an optional system
message kept apart. A plain string is a one-message conversation.
"""

import hashlib
import json
from typing import Any

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


def conversation_normalize(prompt: Any, system: Any = None) -> tuple[list[Message], str]:
    """Return (messages, system) for a prompt given as a string or a message list.

    Raises ValueError with a message that names the offending part. A leading system message in the list
    is moved to `system` (a separate `system` value and a system message together are refused).
    """
    if system is not None and not isinstance(system, str):
        raise ValueError(f"'system' must be a string, not {type(system).__name__}")
    system = system or ""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ValueError("'prompt' is an empty string")
        return [{"role": "user", "content": prompt}], system
    if not isinstance(prompt, list):
        raise ValueError(f"'prompt' must be a string or a list of messages, not {type(prompt).__name__}")
    if not prompt:
        raise ValueError("'prompt' is an empty list of messages")
    messages: list[Message] = []
    for index, message in enumerate(prompt):
        where = f"'prompt'[{index}]"
        if not isinstance(message, dict):
            raise ValueError(f"{where} must be an object with 'role' and 'content'")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"{where}.role is {role!r}: use one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ValueError(f"{where}.content must be a string")
        if role == "system":
            if index != 0:
                raise ValueError(f"{where} is a system message: only the first message may be one")
            if system:
                raise ValueError(f"{where} is a system message and 'system' is given too: keep one")
            system = content
            continue
        messages.append({"role": role, "content": content})
    if not messages:
        raise ValueError("'prompt' holds only a system message: add the user's turn")
    if messages[-1]["role"] != "user":
        raise ValueError("'prompt' must end with a user turn (the responses answer it)")
    return messages, system


def conversation_hash(messages: list[Message], system: str = "") -> str:
    """A stable identity for a prompt, independent of key order and JSON formatting."""
    canonical = json.dumps({"system": system, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def conversation_with_system(messages: list[Message], system: str = "") -> list[Message]:
    """The conversation as chat templates and OpenAI-style APIs take it: the system message first."""
    return ([{"role": "system", "content": system}] if system else []) + list(messages)
