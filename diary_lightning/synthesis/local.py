"""Teachers that run the model in this process: ``transformers`` (any causal LM, batched, left-padded, 4-bit if
asked) and ``vllm`` (the offline engine, tensor parallel over the machine's GPUs; an optional extra that is
imported only when chosen). The vLLM engine runs on one GPU by default; N GPUs run N processes, one
``--shard i/N`` each (docs/synthesis.md)."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from diary_lightning.synthesis.teacher import Reply, Request, TeacherConfig, TeacherError

log = logging.getLogger(__name__)

VLLM_CHUNK = 1024
"""Prompts handed to the engine per call: enough for it to batch well, and what a kill can lose."""


def _chunks(requests: Iterable[Request], size: int) -> Iterator[list[Request]]:
    iterator = iter(requests)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def plain_chat(messages: Sequence[dict[str, str]]) -> str:
    """The messages for a model with no chat template, in the Human/Assistant form EEVE-Korean-Instruct's card
    gives (the project's training prompts use it too): without the closing ``Assistant:`` cue a model goes on
    writing the user's turn."""
    system = "".join(m["content"] + "\n" for m in messages if m["role"] == "system")
    user = "\n\n".join(m["content"] for m in messages if m["role"] != "system")
    return f"{system}Human: {user}\nAssistant:\n"


def teacher_prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt text the model was tuned on: its chat template, or :func:`plain_chat` where it has none."""
    if not getattr(tokenizer, "chat_template", None):
        return plain_chat(messages)
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - jinja raises whatever the template raises
        if messages[0]["role"] != "system":
            raise
        # Some templates (Gemma's) refuse a system message: fold it into the user's.
        log.debug("chat template refused a system message (%s); folding it into the prompt", err)
        merged = [{"role": "user", "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
        return tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer: Any, request: Request | list[dict[str, str]]) -> list[int]:
    """The request's chat prompt as token ids, the data in it read as text (see ``chat_tokens``)."""
    messages = request if isinstance(request, list) else request.messages
    text = teacher_prompt_text(tokenizer, messages)
    return chat_prompt_ids(tokenizer, text, messages, add_special_tokens=not tokenizer.chat_template)


def context_length(tokenizer: Any, config: Any = None) -> int | None:
    """The most tokens the teacher reads at once: its config's ``max_position_embeddings``, else the
    tokenizer's ``model_max_length`` when it is a real one (transformers puts 1e30 there when it is unknown)."""
    text_config = config.get_text_config() if config is not None and hasattr(config, "get_text_config") else config
    positions = getattr(text_config, "max_position_embeddings", None)
    if positions:
        return int(positions)
    known = getattr(tokenizer, "model_max_length", None)
    return int(known) if known and known < 10_000_000 else None


def tokenizer_budget(config: TeacherConfig) -> "TokenBudget | None":
    """The budget of ``--teacher.tokenizer`` (else ``--teacher.model``) where one can be loaded, for a teacher
    that has no tokenizer of its own here (``openai``, ``--dry_run``); None, said in the log, where none can."""
    from diary_lightning.model.loading import load_config, load_tokenizer

    # An openai model is a server's name for it, no path or hub id to load (asking the hub would be network
    # access the user did not ask for).
    name = config.tokenizer or (config.model if config.backend in ("transformers", "vllm") else None)
    if not name:
        return None
    try:
        tokenizer = load_tokenizer(name, config.trust_remote_code)
    except (OSError, ValueError) as err:
        if config.tokenizer:
            raise TeacherError(f"--teacher.tokenizer {name}: cannot load it ({err})") from None
        log.info("prompts not counted in the teacher's tokens: %s has no tokenizer here (--teacher.tokenizer "
                 "names one)", name)
        return None
    context = config.context_length
    if context is None:
        try:
            context = context_length(tokenizer, load_config(name, "--teacher.tokenizer", config.trust_remote_code))
        except (OSError, ValueError):
            context = context_length(tokenizer)
    if context is None:
        log.warning("the teacher's context length is unknown (give --teacher.context_length): prompts are counted "
                    "but not cut")
        return TokenBudget(tokenizer, None, config.max_new_tokens)
    return TokenBudget(tokenizer, context, config.max_new_tokens)


class TokenBudget:
    """The teacher's prompt limit in its own tokens: ``context`` less the diary's ``max_new_tokens``."""

    def __init__(self, tokenizer: Any, context: int | None, max_new_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.budget = context - max_new_tokens if context is not None else None
        if self.budget is not None and self.budget < 1:
            raise TeacherError(f"--teacher.max_new_tokens {max_new_tokens} leaves no room for a prompt in the "
                               f"teacher's context of {context} tokens")

    def count(self, messages: list[dict[str, str]]) -> int:
        return len(prompt_ids(self.tokenizer, messages))


class TransformersTeacher:
    def __init__(self, config: TeacherConfig) -> None:
        import torch

        from diary_lightning.model.loading import DTYPES, load_base, load_tokenizer

        if config.dtype not in DTYPES:
            raise ValueError(f"--teacher.dtype {config.dtype!r}: expected one of {', '.join(DTYPES)}")
        self.config = config
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer = load_tokenizer(config.model, config.trust_remote_code)
        tokenizer.padding_side = "left"  # every prompt ends where its new tokens begin
        model = load_base(config.model, load_in_4bit=config.load_in_4bit, compute_dtype=config.dtype,
                          trust_remote_code=config.trust_remote_code, device=self.device)
        self.model = (model if config.load_in_4bit else model.to(self.device)).eval()  # 4-bit is placed on load
        self.tokenizer = tokenizer
        context = config.context_length or context_length(tokenizer, model.config)
        self.prompt_budget = TokenBudget(tokenizer, context, config.max_new_tokens)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"backend": "transformers", "model": c.model, "load_in_4bit": c.load_in_4bit,
                "temperature": c.temperature, "max_new_tokens": c.max_new_tokens}

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        for chunk in _chunks(requests, self.config.batch_size):
            for request, reply in zip(chunk, self._batch(chunk)):
                on_reply(request, reply)

    def _batch(self, chunk: list[Request]) -> list[Reply]:
        import torch

        c, tokenizer = self.config, self.tokenizer
        batch = tokenizer.pad({"input_ids": [prompt_ids(tokenizer, r) for r in chunk]}, padding=True, return_tensors="pt")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        # One temperature per call: a chunk is all first tries or all retries (the runner retries in rounds).
        temperature = c.temperature if chunk[0].attempt == 0 else c.retry_temperature
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        start = time.monotonic()
        with torch.inference_mode():
            # max_time: transformers' own stop once the batch has run that long (its MaxTimeCriteria).
            out = self.model.generate(**batch, max_new_tokens=c.max_new_tokens, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, max_time=c.deadline, **sampling)
        late = time.monotonic() - start >= c.deadline
        new = out[:, batch["input_ids"].shape[1]:]
        replies = []
        for row, mask in zip(new, batch["attention_mask"]):
            ends = (row == tokenizer.eos_token_id).nonzero()
            if late and not len(ends) and len(row) < c.max_new_tokens:
                # Stopped by the deadline, not by max_new_tokens: no verdict on the diary, ask again next run.
                replies.append(Reply(None, error=f"the batch ran past --teacher.deadline {c.deadline:g} s "
                                                 f"({c.model} on {self.device})", timed_out=True))
                continue
            length = int(ends[0]) if len(ends) else len(row)
            text = tokenizer.decode(row[:length], skip_special_tokens=True).strip()
            replies.append(Reply(text, int(mask.sum()), length, truncated=not len(ends)))
        return replies

    def close(self) -> None:
        pass


def check_tensor_parallel(model: str, size: int, trust_remote_code: bool = False) -> None:
    """Refuse, before any engine starts, a tensor-parallel size that cannot split the model's attention heads
    (vLLM would refuse it only after loading for minutes; EEVE's 32 heads divide by 1, 2, 4, 8, 16, 32)."""
    from diary_lightning.model.loading import load_config

    if size < 1:
        raise TeacherError(f"--teacher.tensor_parallel_size {size}: expected 1 or more GPUs")
    if size == 1:
        return
    config = load_config(model, "--teacher.model", trust_remote_code)
    heads = getattr(config.get_text_config(), "num_attention_heads", None)
    if heads and heads % size:
        fits = [n for n in range(1, heads + 1) if heads % n == 0 and n <= 8]
        raise TeacherError(
            f"--teacher.tensor_parallel_size {size}: {model} has {heads} attention heads, which {size} GPUs cannot "
            f"split evenly; give one of {', '.join(map(str, fits))}, or run one process per GPU with "
            "--teacher.tensor_parallel_size 1 and --shard i/N (docs/synthesis.md)")


class VLLMTeacher:
    def __init__(self, config: TeacherConfig) -> None:
        check_tensor_parallel(config.model, config.tensor_parallel_size, config.trust_remote_code)
        try:
            import vllm
        except ImportError:
            raise TeacherError("--teacher.backend vllm needs vLLM, which is not installed: pip install "
                               "'diary-lightning[vllm]' on a machine with CUDA GPUs (or use --teacher.backend openai "
                               "against a 'vllm serve' server)") from None
        self.config = config
        self.vllm = vllm
        self.llm = vllm.LLM(model=config.model, tensor_parallel_size=config.tensor_parallel_size, dtype=config.dtype,
                            gpu_memory_utilization=config.gpu_memory_utilization,
                            trust_remote_code=config.trust_remote_code)
        self.tokenizer = self.llm.get_tokenizer()
        # The engine's own limit (max_model_len), which vLLM may set below the model's positions to fit the GPU.
        engine_config = getattr(getattr(self.llm, "llm_engine", None), "model_config", None)
        context = config.context_length or getattr(engine_config, "max_model_len", None) or context_length(self.tokenizer)
        self.prompt_budget = TokenBudget(self.tokenizer, context, config.max_new_tokens)

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {"backend": "vllm", "model": c.model, "dtype": c.dtype, "temperature": c.temperature,
                "max_new_tokens": c.max_new_tokens}

    def generate(self, requests: Iterable[Request], on_reply: Callable[[Request, Reply], None]) -> None:
        c = self.config
        first = self.vllm.SamplingParams(temperature=c.temperature, max_tokens=c.max_new_tokens)
        again = self.vllm.SamplingParams(temperature=c.retry_temperature, max_tokens=c.max_new_tokens)
        for chunk in _chunks(requests, max(VLLM_CHUNK, c.batch_size)):
            # Token ids, not text: vLLM would read a "</s>" in the dialogue as the end of the prompt.
            prompts = [{"prompt_token_ids": prompt_ids(self.tokenizer, r)} for r in chunk]
            params = [first if r.attempt == 0 else again for r in chunk]
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
            for request, output in zip(chunk, outputs):
                done = output.outputs[0]
                on_reply(request, Reply(done.text.strip(), len(output.prompt_token_ids or ()), len(done.token_ids),
                                        truncated=done.finish_reason == "length"))

    def close(self) -> None:
        pass


# The token ids of a teacher's chat prompt, with the chat template's own markers as special tokens and the
# messages' content (the dialogue, the summary) as text: a ``</s>`` someone typed in a chat must not end the
# teacher's prompt early, nor an ``<|im_start|>`` open a turn of its own.

def _content_spans(text: str, contents: Sequence[str]) -> list[tuple[int, int]]:
    """Where each message's content lies in the rendered prompt, in order. A template that rewrites content
    (trims it, say) leaves that message unfound: its special-token strings are then left as the template made them."""
    spans, position = [], 0
    for content in contents:
        start = text.find(content, position) if content else -1
        if start >= 0:
            spans.append((start, start + len(content)))
            position = start + len(content)
    return spans


def chat_prompt_ids(tokenizer: Any, text: str, messages: Sequence[dict[str, str]], add_special_tokens: bool) -> list[int]:
    """Ids of ``text`` (``messages`` rendered by the chat template): tokenized as a whole, as the model was tuned,
    except that a special token found inside a message's content is spelled out in ordinary tokens instead."""
    encoded = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    spans = _content_spans(text, [m["content"] for m in messages])
    special = set(tokenizer.all_special_ids)
    ids: list[int] = []
    for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"]):
        if token in special and start < end and any(a <= start and end <= b for a, b in spans):
            ids.extend(tokenizer(text[start:end], add_special_tokens=False, split_special_tokens=True)["input_ids"])
        else:
            ids.append(token)
    return ids
