"""DPO throughput on one GPU through train_dpo's own glue: tokens/s, peak memory, model FLOPs utilisation.

Builds a randomly initialised Llama-shaped model in code (no hub download), saves it, writes synthetic
preference pairs in the export format, and trains with `training.trainer.dpo_train` (TRL's DPOTrainer, bf16
on GPU) for a fixed number of steps, timing the steps after a warm-up.

    .venv/bin/python bench/gpu_dpo.py                     # ~0.5B parameters, bf16, on the GPU
    .venv/bin/python bench/gpu_dpo.py --size tiny --fp32  # a few M parameters on CPU: checks the script runs

MFU = 6 x parameters x tokens/s / the card's peak dense bf16 FLOP/s (6N: forward + backward of the policy);
the reference model's forward adds 2N more per token, shown as "with reference" (hardware utilisation).
"""

import argparse
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TOKENIZER = ROOT.parent / "shared" / "models" / "stories260K"  # any tokenizer will do: the ids feed a random model

# Llama shapes. "0.5b": 28 layers of width 1024 with grouped-query attention and a 32k vocabulary (tied), about
# 0.47B parameters; "small": about 5.7M (TRL reaches ~0.8x a hand-written loop there on CPU); "tiny": ~1M.
SIZES = {
    "0.5b": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 28, "num_attention_heads": 16,
             "num_key_value_heads": 8, "vocab_size": 32000},
    "small": {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 6, "num_attention_heads": 8,
              "num_key_value_heads": 4, "vocab_size": 4096},
    "tiny": {"hidden_size": 128, "intermediate_size": 344, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 2, "vocab_size": 512},
}  # fmt: skip

# Peak dense bf16 tensor FLOP/s (no sparsity), from the vendors' data sheets; matched on the device name.
PEAK_BF16_FLOPS = [
    ("H200", 989.4e12),
    ("H100 PCIe", 756.0e12),
    ("H100", 989.4e12),  # SXM
    ("A100", 312.0e12),
    ("L40S", 362.1e12),
    ("L4", 121.0e12),
]
STORY = (
    "once upon a time there was a little girl named lily she loved to play in the park with her big red ball "
    "one day a friendly dog came and they ran to the tree by the river and laughed all day long until the sun went"
)
WORDS = STORY.split(" ")


def peak_flops(device_name: str) -> float | None:
    return next((flops for key, flops in PEAK_BF16_FLOPS if key.lower() in device_name.lower()), None)


def random_llama(size: str, directory: Path, *, dtype: str = "float32") -> tuple[Path, int]:
    """Save a randomly initialised Llama of `size` (with the stories tokenizer) in `directory`; return it and
    its parameter count."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        **SIZES[size], max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=1, eos_token_id=2
    )
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(TOKENIZER).save_pretrained(directory)
    return directory, sum(p.numel() for p in model.parameters())


def synthetic_rows(n: int, *, prompt_words: int, response_words: int, seed: int = 0) -> list[dict]:
    """Preference rows in the export's string format, of roughly fixed lengths (content is irrelevant here)."""
    rng = random.Random(seed)

    def text(words: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(words))

    rows = []
    for _ in range(n):
        length = rng.randint(response_words // 2, response_words)
        rows.append({"prompt": text(prompt_words) + "\n\n", "chosen": text(length), "rejected": text(length)})
    return rows


def write_parquet(rows: list[dict], directory: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), directory / "train.parquet")
    return directory


def step_timer():
    """A TrainerCallback that notes the wall-clock and the process CPU time at the end of every optimizer step
    (CPU time is what a busy shared machine disturbs least)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.cpu_ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs) -> None:
            self.ends.append(time.perf_counter())
            self.cpu_ends.append(time.process_time())

    return StepTimer()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="0.5b")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30, help="Optimizer steps (the first --warmup are not timed).")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--fp32", action="store_true", help="fp32 instead of bf16 (CPU check runs).")
    parser.add_argument("--precompute-ref-logps", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    args = parser.parse_args()

    import torch

    from training.config import DPORunConfig
    from training.data import preference_data_load
    from training.trainer import dpo_train

    on_gpu = torch.cuda.is_available()
    work = Path(tempfile.mkdtemp(prefix="gpu-dpo-"))
    model_dir, params = random_llama(args.size, work / "model")
    # Lengths in tokens: the stories tokenizer makes about 1.6 tokens per word of WORDS.
    words = int(args.max_length / 1.6)
    rows = synthetic_rows(
        args.batch_size * (args.steps + 1), prompt_words=max(4, words // 8), response_words=words - words // 8
    )
    data = preference_data_load(str(write_parquet(rows, work / "data")))
    config = DPORunConfig(
        data=str(work / "data"),
        model=str(model_dir),
        output=str(work / "out"),
        n_epochs=1,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.max_length,
        learning_rate=1e-5,
        precision="fp32" if args.fp32 else "bf16",
        precompute_ref_logps=args.precompute_ref_logps,
        gradient_checkpointing=args.gradient_checkpointing,
        logging_steps=1,
        save_steps=10**9,
        num_threads=None if on_gpu else 1,
    ).validate()
    tokens: dict[int, float] = {}
    timer = step_timer()
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    result = dpo_train(
        config,
        data,
        on_record=lambda record: tokens.__setitem__(record["step"], record.get("num_tokens", 0.0)),
        extra_callbacks=[timer],
    )
    first, last = args.warmup, result.global_step
    seconds = timer.ends[last - 1] - timer.ends[first - 1]
    tokens_per_s = (tokens[last] - tokens[first]) / seconds
    device = torch.cuda.get_device_name(0) if on_gpu else "CPU"
    peak = peak_flops(device) if on_gpu else None
    figures = {
        "device": device,
        "size": args.size,
        "parameters": params,
        "precision": "fp32" if args.fp32 else "bf16",
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "timed_steps": last - first,
        "tokens_per_s": round(tokens_per_s, 1),
        "pairs_per_s": round(args.batch_size * (last - first) / seconds, 2),
        "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
        "peak_rss_mib": round(peak_rss_mb()),
        "mfu": round(6 * params * tokens_per_s / peak, 4) if peak else None,
        "mfu_with_reference": (
            round((6 + (0 if args.precompute_ref_logps else 2)) * params * tokens_per_s / peak, 4) if peak else None
        ),
    }
    shutil.rmtree(work, ignore_errors=True)
    for key, value in figures.items():
        print(f"{key:>22}: {value if value is not None else 'n/a'}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
