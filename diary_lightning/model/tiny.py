"""A tiny Llama-architecture model and tokenizer built locally, for the CPU demo and the tests.

Nothing can be downloaded at run time, so the demo trains a byte-level BPE tokenizer
on the bundled Korean dialogues and saves a randomly initialised LlamaForCausalLM
beside it, in the same layout as a hub model: the real loading code reads it.

A purely random base cannot show fine-tuning at work: its frozen output layer is so small
that LoRA barely moves the loss. The command line therefore pre-trains the weights on the
bundled chats (never on their diaries) for a few seconds, a stand-in for pretraining;
the tests keep the purely random model.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from diary_lightning.io.atomic import atomic_directory

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]


def sample_data_path(name: str = "sample_dialogues.json") -> Path:
    """Path of a file bundled in ``diary_lightning/resources``."""
    return Path(str(resources.files("diary_lightning") / "resources" / name))


def _corpus() -> Iterator[str]:
    from diary_lightning.data.prompts import TEMPLATES

    yield from TEMPLATES.values()
    data = json.loads(sample_data_path().read_text(encoding="utf-8"))
    for record in data["data"]:
        yield record["body"]["summary"]
        for utterance in record["body"]["dialogue"]:
            yield f'{utterance["participantID"]}: {utterance["utterance"]}'
    for line in sample_data_path("sample_chats.jsonl").read_text(encoding="utf-8").splitlines():
        for message in json.loads(line)["dialogue"]:
            yield f'{message["speaker"]}: {message["text"]}'


def build_tokenizer(vocab_size: int = 2048) -> object:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no <unk> on new text
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def build_tiny_model(
    output: str | os.PathLike,
    hidden_size: int = 64,
    num_layers: int = 2,
    intermediate_size: int | None = None,
    vocab_size: int = 2048,
    seed: int = 0,
    force: bool = False,
    pretrain_steps: int = 0,
) -> Path:
    """Write a random tiny Llama and its tokenizer to ``output``; reuses an existing one unless ``force``.
    ``pretrain_steps`` > 0 first trains every weight that many steps on the bundled chats (see the module doc)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    output = Path(output)
    if (output / "config.json").is_file() and not force:
        return output
    tokenizer = build_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=max(hidden_size // 32, 2),
        num_key_value_heads=max(hidden_size // 64, 1),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if pretrain_steps:
        _pretrain(model, tokenizer, pretrain_steps)
    with atomic_directory(output) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return output


def _pretrain(model: object, tokenizer: object, steps: int, batch_size: int = 8, max_tokens: int = 256) -> None:
    """Language-model training of the whole model on the bundled chats' utterances (no diaries)."""
    import torch

    data = json.loads(sample_data_path().read_text(encoding="utf-8"))["data"]
    chats = ["\n".join(f'{u["participantID"]}: {u["utterance"]}' for u in record["body"]["dialogue"])
             for record in data]
    encoded = [tokenizer(chat)["input_ids"][:max_tokens] for chat in chats]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        rows = [encoded[i] for i in torch.randint(len(encoded), (batch_size,), generator=generator).tolist()]
        width = max(map(len, rows))
        ids = torch.full((batch_size, width), tokenizer.pad_token_id)
        labels = torch.full((batch_size, width), -100)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = labels[r, : len(row)] = torch.tensor(row)
        loss = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def main(argv: list[str] | None = None) -> None:
    from diary_lightning.__main__ import delay_progress_bars

    delay_progress_bars()  # before transformers imports tqdm: its bar of the one shard written is noise
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/tiny-model", help="directory to write (default: %(default)s)")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--force", action="store_true", help="rebuild even if the directory holds a model")
    parser.add_argument("--pretrain-steps", type=int, default=200,
                        help="steps of training on the bundled chats before saving; 0: purely random (default: %(default)s)")
    args = parser.parse_args(argv)
    path = build_tiny_model(args.output, args.hidden_size, args.num_layers, vocab_size=args.vocab_size, force=args.force,
                            pretrain_steps=args.pretrain_steps)
    print(path)


if __name__ == "__main__":
    main()
