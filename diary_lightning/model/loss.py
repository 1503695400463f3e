"""The causal-LM loss without the full logits: only the labelled positions are scored, a chunk at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from diary_lightning.data.encoding import IGNORE_INDEX

# Architectures whose logits are more than lm_head(hidden): this loss would silently drop the extra step.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling")


def check_chunked_loss_support(config: Any) -> None:
    """Refuse, before training, a model whose logits this loss would compute wrongly."""
    used = [name for name in _LOGIT_TRANSFORMS if getattr(config, name, None) not in (None, 1, 1.0)]
    if used:
        raise ValueError(
            f"model.loss_chunk_size: the {getattr(config, 'model_type', 'model')} model transforms its logits "
            f"({', '.join(used)}), which the chunked loss does not; set model.loss_chunk_size: 0"
        )


def _chunk_loss(lm_head: torch.nn.Module, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # Upcast as transformers does before its cross-entropy: bf16 logits lose the small probabilities.
    return F.cross_entropy(lm_head(hidden).float(), targets, reduction="sum")


def chunked_causal_lm_loss(hidden: torch.Tensor, lm_head: torch.nn.Module, labels: torch.Tensor,
                           chunk_size: int) -> torch.Tensor:
    """Token-mean next-token cross-entropy from the decoder's final ``hidden`` states (batch, seq, dim).

    The same value as the loss transformers computes from the full logits (position t scored against
    label t + 1, ``IGNORE_INDEX`` left out, mean over scored tokens), but only the scored positions go
    through ``lm_head`` (the prompt is most of a chat), ``chunk_size`` of them at a time, and under
    autograd each chunk's logits are recomputed in backward instead of kept: the memory for logits is
    one chunk's, not the batch's ``seq x vocab`` in fp32 several times over. Zero, not NaN, when no
    position is labelled.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be at least 1")
    targets = labels[:, 1:]
    scored = targets != IGNORE_INDEX
    hidden = hidden[:, :-1][scored]
    targets = targets[scored]
    if len(targets) == 0:
        return hidden.sum().float()  # zero, still attached to the graph so that backward runs
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, len(targets), chunk_size):
        h, t = hidden[start : start + chunk_size], targets[start : start + chunk_size]
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_loss, lm_head, h, t, use_reentrant=False)
        else:
            total = total + _chunk_loss(lm_head, h, t)
    return total / len(targets)


def peft_chunked_loss(peft_model: Any, batch: dict[str, Any], chunk_size: int) -> torch.Tensor:
    """:func:`chunked_causal_lm_loss` of a PEFT-wrapped causal LM on a collated batch."""
    base = peft_model.get_base_model()
    # The decoder alone: the LoRA layers sit inside it, and lm_head is applied per chunk.
    hidden = base.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                use_cache=False).last_hidden_state
    return chunked_causal_lm_loss(hidden, base.get_output_embeddings(), batch["labels"], chunk_size)


# One optimizer step's gradient as the mean over every target token it saw.
#
# Lightning averages the micro-batches' mean losses over ``accumulate_grad_batches``, and DDP averages the
# ranks' gradients: a 20-token diary alone in its micro-batch then weighs as much as a 100-token one, each
# of its tokens five times as much. One big batch holding the same dialogues would weigh every token alike:
# the sum of the token losses over the number of target tokens of the whole step, on every rank.
#
# That number is only known once the step's last micro-batch has been seen, so each micro-batch
# backpropagates the *sum* of its token losses, and the accumulated, rank-averaged gradient is divided by
# the step's token total just before the optimizer (and gradient clipping) sees it. The token counts come
# with each batch from the collator, on the CPU; the ranks add theirs up once per optimizer step.

class TokenMeanGradients:
    """Turns per-micro-batch mean losses into a per-token mean over the optimizer step."""

    def __init__(self) -> None:
        self.tokens = 0  # target tokens seen on this rank since the last optimizer step

    def loss_to_backward(self, mean_loss: torch.Tensor, num_scored: int, accumulate_grad_batches: int) -> torch.Tensor:
        """What the training step returns: the micro-batch's summed token loss, times the factor Lightning
        divides the returned loss by when it accumulates."""
        self.tokens += num_scored
        return mean_loss * (num_scored * accumulate_grad_batches)

    def scale(self, params: Iterable[torch.nn.Parameter], world_size: int, sum_over_ranks: Callable[[int], int]) -> None:
        """Divide the step's gradients by its token total over all ranks (times ``world_size``, which DDP
        has already divided by); gradients are left alone when it is 0, as they are zero."""
        tokens, self.tokens = self.tokens, 0
        total = sum_over_ranks(tokens) if world_size > 1 else tokens
        if total > 0:
            factor = world_size / total
            for param in params:
                if param.grad is not None:
                    param.grad.mul_(factor)
