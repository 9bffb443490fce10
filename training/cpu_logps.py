"""On CPU, score tokens from the full logits instead of TRL's tiled log-prob path (TRL 1.16.0 only).

TRL 1.16 computes per-token log-probs in tiles without ever holding the (batch, length, vocab) logits, and
recomputes them in the backward pass: right for GPUs and big vocabularies, but on CPU, where the tiles are
folded by torch ops over every position, it costs 10-17% of a step on small models (measured: stories260K, a
5.8M Llama). This replaces the forward TRL patches onto the model, so it is tied to the TRL version it was
written for: with any other, TRL's own path stays (and a warning says so once).
"""

from __future__ import annotations

import functools
import logging

from training.config import DPORunConfig

logger = logging.getLogger(__name__)

# The TRL whose `add_fused_lm_head` forward and `FusedCausalLMOutput` plain_lm_head reproduces.
TRL_VERSION = "1.16.0"
# Score tokens from full logits when a batch's take at most this much memory (see _logits_bytes).
PLAIN_LOGITS_MAX_BYTES = 1 << 30


def score_from_full_logits(trainer, config: DPORunConfig) -> bool:
    """Give the trainer's models (policy, and reference if any) plain_lm_head when a batch's logits fit in
    PLAIN_LOGITS_MAX_BYTES and TRL is TRL_VERSION; return whether it did. For CPU runs only."""
    if _logits_bytes(trainer, config) > PLAIN_LOGITS_MAX_BYTES or not trl_version_supported():
        return False
    for model in (trainer.model, trainer.ref_model):
        if model is not None:
            plain_lm_head(model.get_base_model() if hasattr(model, "get_base_model") else model)
    return True


def trl_version_supported() -> bool:
    import trl

    if trl.__version__ == TRL_VERSION:
        return True
    _warn_other_trl(trl.__version__)
    return False


@functools.cache
def _warn_other_trl(version: str) -> None:
    logger.warning(
        "TRL %s is installed, but the CPU scoring from full logits (training/cpu_logps.py) was written for TRL %s: "
        "using TRL's own log-prob path, which is slower on CPU.",
        version,
        TRL_VERSION,
    )


def _logits_bytes(trainer, config: DPORunConfig) -> int:
    """Peak memory of scoring one batch from full logits: the fp32 logits of its chosen and rejected
    sequences at max_length, about 4 times over (logits, log_softmax, their product, the gradients)."""
    vocab = trainer.model.get_output_embeddings().weight.shape[0]
    return 4 * (4 * 2 * config.batch_size * config.max_length * vocab)


def plain_lm_head(model) -> None:
    """Let TRL's `fused_lm_head=True` calls score tokens from the full logits, as a hand-written loop does.

    Wraps TRL's patched forward and returns the same FusedCausalLMOutput fields (log-probs with gradient;
    entropy, mean logit and top-1 for the metrics, without); tests check that it logs the same metrics as
    TRL's path."""
    import types

    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    fused_forward = model.forward  # TRL's, from add_fused_lm_head

    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kw):
        if not fused_lm_head or labels is None or shift_labels is not None or kw.get("output_router_logits"):
            return fused_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kw,
            )
        kw["use_cache"] = False
        logits = fused_forward(*args, **kw).logits[:, :-1].float()  # position t predicts token t + 1
        labels = labels[:, 1:]
        mask = labels != -100
        all_logps = torch.log_softmax(logits, dim=-1)
        log_probs = all_logps.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1).masked_fill(~mask, 0)
        with torch.no_grad():
            entropy = -(all_logps.exp() * all_logps).sum(-1).masked_fill(~mask, 0)
            mean_logits = logits.mean(-1).masked_fill(~mask, 0)
            is_top1 = (logits.argmax(-1) == labels) & mask
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy,
            mean_logits=mean_logits,
            is_top1=is_top1,
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)
