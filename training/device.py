"""Where a run computes: its rank in a multi-process launch, its device and precision, its torch threads."""

from __future__ import annotations

import os
from dataclasses import dataclass

from core.errors import InputError
from training.config import DPORunConfig

THREADS_ENV = "PREFSTUDIO_TORCH_THREADS"


@dataclass
class DeviceInfo:
    on_gpu: bool
    bf16: bool
    description: str
    world_size: int = 1


def is_main_process() -> bool:
    """False on the non-main ranks of `accelerate launch` / `torchrun`, which must not write the run's record."""
    return os.environ.get("RANK", "0") == "0"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def set_threads(config: DPORunConfig) -> int | None:
    """Apply --num-threads (or PREFSTUDIO_TORCH_THREADS). With another process busy on a 2-core machine, torch's
    default of 2 threads can make a step 10x slower than 1 thread, so it must be easy to choose."""
    import torch

    threads = config.num_threads
    if not threads and os.environ.get(THREADS_ENV):
        try:
            threads = int(os.environ[THREADS_ENV])
        except ValueError:
            raise InputError(f"{THREADS_ENV}={os.environ[THREADS_ENV]!r} is not a number of threads.") from None
    if threads:
        torch.set_num_threads(threads)
    return threads


def detect_device(config: DPORunConfig) -> DeviceInfo:
    import torch

    on_gpu = torch.cuda.is_available()
    if config.precision == "bf16":
        if not (on_gpu and torch.cuda.is_bf16_supported()):
            raise InputError(
                "--bf16 needs a GPU that computes in bfloat16, and there is none here: use --fp32 (or leave the "
                "precision to auto)."
            )
        bf16 = True
    elif config.precision == "fp32":
        bf16 = False
    else:  # auto: bf16 where the GPU does it natively, fp32 on CPU (no speed-up there, and TRL's default fails)
        bf16 = on_gpu and torch.cuda.is_bf16_supported()
    name = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    description = f"{world_size()} x {name}" if world_size() > 1 else name
    return DeviceInfo(on_gpu=on_gpu, bf16=bf16, description=description, world_size=world_size())
