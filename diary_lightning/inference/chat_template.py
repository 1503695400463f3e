"""The chat template saved with an exported adapter's tokenizer: a model server builds the training prompt.

A diary service does not run ``predict``: it sends each chat to a model server (vLLM, TGI, transformers
behind an OpenAI-compatible API) as chat messages, and the server renders them with the tokenizer's
``chat_template``. The template written here takes

    [{"role": "system", "content": <the template's system line>},   # optional
     {"role": "user", "content": <render_chat(...).user_message>}]

and renders, with ``add_generation_prompt=True``, exactly the text whose tokens training put before each
diary: the prompt template with the user message in its ``{dialogue}`` field, after the special tokens the
tokenizer adds itself (``<s>``). Anything else (another system line, an assistant turn, two user messages)
raises an error in the server rather than silently prompting the adapter with a prompt it never saw.

Imports neither torch nor Lightning.
"""

from __future__ import annotations

import json
from typing import Any

from diary_lightning.data.prompts import EEVE_SYSTEM

SYSTEM_LINES = (EEVE_SYSTEM,)
"""System lines a template may start with; the chat template takes it as the system message."""
_MARK = "\x00dialogue\x00"


def system_line(template: str) -> str | None:
    """The system line ``template`` starts with, if it is one of :data:`SYSTEM_LINES`."""
    return next((line for line in SYSTEM_LINES if template.startswith(line)), None)


def added_special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text when it adds special tokens (Llama: ``[<s>]``, [])."""
    probe = "오늘 a"
    bare = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[:start], full[start + len(bare):]
    raise ValueError(f"cannot tell which special tokens {type(tokenizer).__name__} adds: {full} holds no {bare}")


def _literal(text: str) -> str:
    # A Jinja string literal: JSON's escapes (\n, \", \\, \uXXXX) are ones Jinja's lexer decodes too.
    return json.dumps(text, ensure_ascii=False)


def build_chat_template(template: str, tokenizer: Any) -> str:
    """The Jinja chat template that renders ``template`` (a resolved prompt template with ``{dialogue}``) around
    the user message, with the special tokens ``tokenizer`` adds when it encodes training's prompts."""
    before, after = (tokenizer.convert_ids_to_tokens(ids) for ids in added_special_tokens(tokenizer))
    parts = template.format(dialogue=_MARK).split(_MARK)
    system = system_line(template)
    head = parts[0][len(system):] if system is not None else parts[0]
    fail = "{{ raise_exception(%s) }}"
    checks = [
        "{%- set ns = namespace(system=none, user=none) -%}",
        "{%- for message in messages -%}",
        "{%- if message['role'] == 'system' and loop.first -%}{%- set ns.system = message['content'] -%}",
        "{%- elif message['role'] == 'user' and ns.user is none -%}{%- set ns.user = message['content'] -%}",
        "{%- else -%}" + fail % _literal(
            "this adapter writes a diary from one chat: send an optional system message, then one user message "
            "holding the rendered chat (diary_lightning.data.encoding.render_chat)") + "{%- endif -%}",
        "{%- endfor -%}",
        "{%- if ns.user is none -%}" + fail % _literal("no user message: send the rendered chat as one")
        + "{%- endif -%}",
    ]
    if system is not None:
        checks.append("{%- if ns.system is not none and ns.system != " + _literal(system) + " -%}"
                      + fail % _literal(f"this adapter was trained with the system message {system!r}; "
                                        "send that one or none") + "{%- endif -%}")
    else:
        checks.append("{%- if ns.system is not none -%}"
                      + fail % _literal("this adapter's prompt has no system line: send none") + "{%- endif -%}")
    # Whatever add_generation_prompt says, the prompt ends where the diary begins, as in training.
    pieces = ["".join(before) + (system or "") + head, *parts[1:]]
    body = "{{ ns.user }}".join("{{ " + _literal(piece) + " }}" for piece in pieces)
    return "".join(checks) + body + "{{ " + _literal("".join(after)) + " }}"


def chat_messages(user_message: str, template: str) -> list[dict[str, str]]:
    """The messages a service sends for one rendered chat: the template's system line (if any) and the chat."""
    system = system_line(template)
    messages = [{"role": "system", "content": system}] if system is not None else []
    return messages + [{"role": "user", "content": user_message}]
