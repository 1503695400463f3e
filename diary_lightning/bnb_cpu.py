"""Keep bitsandbytes' 4-bit layers on their autograd path on the CPU.

bitsandbytes (>= 0.49) repacks an NF4 layer's weight into an AVX512-BF16 layout the first time the layer
runs in eval mode on an input that needs no grad: the sanity check, every validation, every generation.
The repacking is permanent, and from then on ``matmul_4bit`` calls ``gemv_4bit``, an op without an
autograd formula: back in training, the gradient with respect to the layer's input is dropped without an
error (PyTorch only warns that no autograd kernel was registered), so every LoRA gradient below the
last layer is wrong. The packed kernel also computes in bfloat16 with bfloat16 block scales whatever
``compute_dtype`` says, so even a pure-inference model (predict, DiaryWriter) would write other diaries
than the validation of the same adapter in a float32 fit. Neither use is harmless, so the repacking is
turned off for every model the project loads, on every CPU; a CPU without AVX512-BF16 never repacks.
"""

from __future__ import annotations

from typing import Any


def keep_nf4_unpacked(model: Any) -> int:
    """Stop every bitsandbytes 4-bit layer of ``model`` from repacking its weight for the CPU. Call it as the
    model is loaded, before any forward. Returns the number of 4-bit layers; 0 without bitsandbytes."""
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:  # a model without 4-bit layers: nothing to keep
        return 0
    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    for layer in layers:
        # The flag bitsandbytes checks before repacking (Linear4bit.forward); set per layer, not on the
        # class, so that other models in the process keep their library's behaviour.
        layer.support_avx512bf16_for_cpu = False
    return len(layers)
