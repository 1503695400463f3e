"""Loading the model: the (4-bit) base, LoRA adapters on it, and the check that saved adapters fit it.

Shared by training, export and :class:`DiaryPipeline`; imports neither Lightning nor the data module, so a
service that only writes diaries does not need them. Settings arrive as a mapping (the LightningModule's
hyperparameters, or what an exported adapter recorded), never as the module itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from diary_lightning.errors import ConfigError
from diary_lightning.model.metadata import AdapterMismatchError, RunMetadata, check_base

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def check_adapter_checkpoint(checkpoint: Mapping[str, Any], hparams: Mapping[str, Any], live: Any,
                             expected: Mapping[str, torch.Tensor]) -> None:
    """Refuse a checkpoint whose adapters would not load fully into the model configured by ``hparams``,
    whose base has the fingerprint ``live`` (:class:`~diary_lightning.model.metadata.BaseFingerprint`) and whose
    adapter weights are ``expected``; or that was trained on another base (unless ``model.allow_other_base``).

    Loading is not strict (the base is not saved), so without this check a checkpoint
    from another base model or LoRA shape would load nothing and say nothing.
    """
    meta = RunMetadata.from_checkpoint(checkpoint)
    saved = checkpoint.get("state_dict", {})
    if meta is None:
        raise AdapterMismatchError("the checkpoint was not written by diary_lightning (no adapter metadata)")
    where = f"the checkpoint (base {meta.base_model}, LoRA {dict(meta.lora)})"
    here = (f"the configured model (base {hparams['base_model']}, LoRA r={hparams['lora_r']}, "
            f"alpha={hparams['lora_alpha']}, target_modules={hparams['target_modules']})")
    check_base(meta.fingerprint, live, bool(hparams.get("allow_other_base")), where)
    missing = sorted(set(expected) - set(saved))
    unexpected = sorted(set(saved) - set(expected))
    wrong_shape = [k for k in set(saved) & set(expected) if saved[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        detail = []
        if missing:
            detail.append(f"{len(missing)} adapter weight(s) missing, e.g. {missing[0]}")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
        if wrong_shape:
            detail.append(f"{len(wrong_shape)} of another shape, e.g. {wrong_shape[0]}: "
                          f"{tuple(saved[wrong_shape[0]].shape)} vs {tuple(expected[wrong_shape[0]].shape)}")
        raise AdapterMismatchError(f"{where} does not fit {here}: " + "; ".join(detail))


def adapter_state(model: Any) -> dict[str, torch.Tensor]:
    """The adapter weights of the PEFT ``model``, under the names PEFT saves them with (no adapter name)."""
    from peft import get_peft_model_state_dict

    return get_peft_model_state_dict(model)


def load_adapter_state(model: Any, state: Mapping[str, torch.Tensor]) -> None:
    """Put ``state`` (named as :func:`adapter_state` names it) into the PEFT ``model``; a name that matches
    no adapter weight is an error, not skipped, so a load can never silently load nothing."""
    from peft import set_peft_model_state_dict

    unexpected = set_peft_model_state_dict(model, dict(state)).unexpected_keys
    if unexpected:
        raise AdapterMismatchError(f"{len(unexpected)} adapter weight(s) match no adapter of the model, "
                                   f"e.g. {sorted(unexpected)[0]}")


def load_adapter_checkpoint(model: Any, checkpoint: dict[str, Any], hparams: Mapping[str, Any],
                            expected: Mapping[str, torch.Tensor], live: Any) -> None:
    """Load a Lightning checkpoint's adapter into the PEFT ``model``: its keys renamed to PEFT's (in
    ``checkpoint["state_dict"]``), checked against ``expected`` (the model's own adapter state) and ``hparams``."""
    checkpoint["state_dict"] = peft_names(checkpoint.get("state_dict", {}))
    check_adapter_checkpoint(checkpoint, hparams, live, expected)
    load_adapter_state(model, checkpoint["state_dict"])


def peft_names(state: Mapping[str, torch.Tensor], adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """``state`` under PEFT's saved names. Checkpoints of earlier diary_lightning versions hold the adapters
    under the LightningModule's names (``model.`` + PEFT's full name, with the adapter's), which still load."""
    if not state or not all(key.startswith("model.") for key in state):
        return dict(state)
    return {key.removeprefix("model.").replace(f".{adapter_name}.", "."): value for key, value in state.items()}


def load_base(base_model: str, *, load_in_4bit: bool, compute_dtype: str, double_quant: bool = True,
              attn_implementation: str | None = None, trust_remote_code: bool = False,
              device: torch.device | str = "cpu") -> Any:
    """The frozen base as training loads it: 4-bit NF4 with ``compute_dtype`` matmuls, or plain ``compute_dtype``."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    device = torch.device(device)
    dtype = DTYPES[compute_dtype]
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    index = device.index if device.type == "cuda" else None
    if load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=dtype,
        )
        # Bound to this process's device: "auto" would spread one rank's copy over every GPU.
        kwargs["device_map"] = {"": index if index is not None else device.type}
    elif device.type == "cuda":
        # Unquantized (configs/eeve-lora-bf16.yaml), straight onto this process's GPU: through the host the
        # 21.6 GB of EEVE's bf16 weights would be read into memory first and copied over afterwards.
        kwargs["device_map"] = {"": index if index is not None else 0}
    model = load_pretrained(lambda name: AutoModelForCausalLM.from_pretrained(name, **kwargs), base_model,
                            "model.base_model")
    if load_in_4bit:
        keep_nf4_unpacked(model)  # before any forward: see diary_lightning.model.loading
    return model


def load_config(name: str, what: str, trust_remote_code: bool = False) -> Any:
    """The transformers config of the model ``name`` (``what`` names the setting in errors): what a check can
    read in a second, before minutes of loading weights."""
    from transformers import AutoConfig

    return load_pretrained(lambda n: AutoConfig.from_pretrained(n, trust_remote_code=trust_remote_code), name, what)


def check_positions(base_model: str, max_length: int, *, trust_remote_code: bool = False) -> None:
    """Refuse a ``data.max_length`` over the positions the base model was built for, from its config alone,
    before the weights load: past ``max_position_embeddings`` a rotary model still runs, on positions it
    never saw, and writes worse diaries without an error anywhere."""
    config = load_config(base_model, "model.base_model", trust_remote_code)
    limit = getattr(config, "max_position_embeddings", None)
    if isinstance(limit, int) and max_length > limit:
        raise ConfigError(f"data.max_length={max_length} is over the {limit} positions of the base model "
                          f"{base_model} (max_position_embeddings in its config.json): set data.max_length to "
                          f"{limit} or less")


def build_model(hparams: Mapping[str, Any], device: torch.device) -> Any:
    """The base model, quantized if asked, with fresh LoRA adapters (only they require grad), or with the
    exported adapter of ``hparams["adapter_path"]``, frozen, for inference."""
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    model = load_base(hparams["base_model"], load_in_4bit=hparams["load_in_4bit"],
                      compute_dtype=hparams["compute_dtype"], double_quant=hparams["double_quant"],
                      attn_implementation=hparams["attn_implementation"],
                      trust_remote_code=hparams["trust_remote_code"], device=device)
    model.config.use_cache = False
    if hparams.get("adapter_path"):
        # Loaded as DiaryPipeline and plain PEFT load it, without the training preparation (which casts
        # norms to float32), so every path writes the same diary.
        return PeftModel.from_pretrained(model, hparams["adapter_path"])
    checkpointing = {"use_reentrant": False}
    # PEFT's preparation casts every bf16 weight outside the 4-bit layers (embeddings, norms, LM head) to
    # float32, so the residual stream runs in float32; residual_dtype bfloat16 leaves them as loaded.
    bf16_residual = hparams.get("residual_dtype", "float32") == "bfloat16"
    if hparams["load_in_4bit"] and not bf16_residual:
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=hparams["gradient_checkpointing"],
            gradient_checkpointing_kwargs=checkpointing,
        )
    else:
        model.requires_grad_(False)
        if hparams["gradient_checkpointing"]:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    if hparams["gradient_checkpointing"]:
        # With a frozen embedding no checkpointed input requires grad, and the adapters would get none.
        model.enable_input_require_grads()
    lora = LoraConfig(
        r=hparams["lora_r"],
        lora_alpha=hparams["lora_alpha"],
        lora_dropout=hparams["lora_dropout"],
        target_modules=hparams["target_modules"],
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    if bf16_residual:
        # PEFT makes the adapters float32 beside a 4-bit layer; TRL casts them back to bf16, and so does this.
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.data = parameter.data.to(torch.bfloat16)
    return model


def load_tokenizer(name_or_path: str, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    from diary_lightning.model.loading import load_pretrained

    tokenizer = load_pretrained(lambda name: AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code),
                                name_or_path, "tokenizer")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"the tokenizer of {name_or_path} has no EOS token; the diary could never end")
    if tokenizer.pad_token_id is None:
        # Pads never reach the loss (their labels are IGNORE_INDEX), so any id will do.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


# Keep bitsandbytes' 4-bit layers on their autograd path on the CPU.
#
# bitsandbytes (>= 0.49) repacks an NF4 layer's weight into an AVX512-BF16 layout the first time the layer
# runs in eval mode on an input that needs no grad: the sanity check, every validation, every generation.
# The repacking is permanent, and from then on ``matmul_4bit`` calls ``gemv_4bit``, an op without an
# autograd formula: back in training, the gradient with respect to the layer's input is dropped without an
# error (PyTorch only warns that no autograd kernel was registered), so every LoRA gradient below the
# last layer is wrong. The packed kernel also computes in bfloat16 with bfloat16 block scales whatever
# ``compute_dtype`` says, so even a pure-inference model (predict, DiaryPipeline) would write other diaries
# than the validation of the same adapter in a float32 fit. Neither use is harmless, so the repacking is
# turned off for every model the project loads, on every CPU; a CPU without AVX512-BF16 never repacks.

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


# Model and tokenizer locations: a local folder or a Hugging Face Hub id, told apart before transformers is asked.
#
# transformers takes any name that is not an existing folder for a Hub id, so a typo in a local path, or a
# relative path used from another working directory, ends offline in a connection error about
# huggingface.co. Here such a name is reported as the missing path it is.

T = TypeVar("T")

# A Hub id is "name" or "owner/name": letters, digits, '-', '_', '.'; never two slashes, never a leading
# dot or slash, never a backslash.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


def looks_local(name: str) -> bool:
    """A name that can only be a path: absolute, ``~``, ``./`` or ``../``, a backslash, or more than one ``/``."""
    return not _HUB_ID.fullmatch(name)


def _missing(name: str, what: str, extra: str = "") -> FileNotFoundError:
    resolved = Path(name).expanduser()
    where = f" (resolved from the working directory {os.getcwd()} to {resolved.absolute()})" if not resolved.is_absolute() else ""
    return FileNotFoundError(f"{what}={name!r}: no such folder{where}{extra}")


def _under_a_local_folder(name: str) -> bool:
    # "runs/typo" could be a Hub id, but when ./runs exists it is meant as a path; asking the Hub would
    # only add, offline, a minute of retries before the same answer.
    parent = Path(name).expanduser().parent
    return str(parent) not in ("", ".") and parent.is_dir()


def check_local(name: str, what: str) -> None:
    """Stop on a name that can only be a local path and does not exist, before anything reaches for the Hub."""
    if (looks_local(name) or _under_a_local_folder(name)) and not Path(name).expanduser().is_dir():
        raise _missing(name, what)


def load_pretrained(load: Callable[[str], T], name: str, what: str) -> T:
    """``load(name)`` (a ``from_pretrained``), with a missing local folder named as such.

    A name that could be a Hub id (``runs/tiny-model`` could) is tried on the Hub; if that fails and no
    folder of that name exists here, the error says both.
    """
    check_local(name, what)
    try:
        return load(name)
    except OSError as err:
        if Path(name).expanduser().exists():
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _missing(name, what, f", and not found as a Hugging Face Hub id either ({first})") from None
