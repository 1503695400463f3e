"""One optimizer step's gradient as the mean over every target token it saw.

Lightning averages the micro-batches' mean losses over ``accumulate_grad_batches``, and DDP averages the
ranks' gradients: a 20-token diary alone in its micro-batch then weighs as much as a 100-token one, each
of its tokens five times as much. One big batch holding the same dialogues would weigh every token alike:
the sum of the token losses over the number of target tokens of the whole step, on every rank.

That number is only known once the step's last micro-batch has been seen, so each micro-batch
backpropagates the *sum* of its token losses, and the accumulated, rank-averaged gradient is divided by
the step's token total just before the optimizer (and gradient clipping) sees it. The token counts come
with each batch from the collator, on the CPU; the ranks add theirs up once per optimizer step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch


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
