"""What a config's `device:` means, the one place it is decided.

`auto` is the GPU a process can see, else the CPU. In the workflow a job sees a GPU only when its rule
asks for one: the rules that load a model (dump, transfer, similarity, lm_loss) ask for one; a probe
job asks for one only when probe.device names it (`job_device`), so that `auto` never takes a GPU that
belongs to another job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def job_device(spec: str) -> str:
    """The device of a workflow job that asks for a GPU only when `spec` names one: cuda[:N] or cpu."""
    return spec if spec.startswith("cuda") else "cpu"


def select_device(spec: str | None = "auto") -> torch.device:
    """`auto` (or None) is the first GPU where there is one, else the CPU."""
    import torch

    if spec in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def select_dtype(spec: str | None, device: torch.device) -> torch.dtype:
    """`auto`: float32 on CPU (exact, and half precision is slow there), bfloat16 (or float16) on GPU."""
    import torch

    if spec in (None, "auto"):
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    dtypes = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if spec not in dtypes:
        raise ValueError(f"activations.dtype: '{spec}' is not one of auto, {', '.join(dtypes)}")
    return dtypes[spec]
