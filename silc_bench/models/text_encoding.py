"""Text encoded at the length the text has, where that is provably the same computation.

open_clip's CLIP text transformer runs every prompt at the full context length (77 for
CLIP), though ImageNet prompts are 14 tokens at most. Its attention is causal and its pooled
output reads the end-of-text token, so no token after the end of text ever reaches it:
cutting a batch to its longest sequence removes only work whose result is thrown away. The
outputs differ only by float rounding (the matmuls change shape; measured ≤ 1e-6 on
normalised embeddings, `tests/test_text_encoding.py`).

A tower qualifies only when all of that can be read off the module: an open_clip `CLIP`
(not a CustomTextCLIP, whose towers are HF or timm code), a causal mask, and `argmax` or
`eos` pooling. The cut is after the last non-zero token of any row: open_clip's tokenizers
pad with 0 after the end of text, a zero inside a prompt (the "!" token) is kept, and a
tokenizer padding with another id is simply not cut. Everything else (SigLIP's last-token
pooling over padded text, a tower without a causal mask) is encoded at full length, and the
result records which was used (`protocol.text_encoding`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MODES = ("trimmed", "full")
SUB_BATCH = 64  # prompts per forward once sorted by length, inside one batch


def trimmable(module: torch.nn.Module) -> bool:
    import open_clip

    return (
        isinstance(module, open_clip.CLIP)
        and getattr(module, "attn_mask", None) is not None
        and getattr(module, "text_pool_type", None) in ("argmax", "eos")
    )


def used_length(tokens: torch.Tensor) -> int:
    """One past the last non-padding token of any row (at least 1)."""
    nonzero = (tokens != 0).int()
    last = nonzero.shape[1] - 1 - torch.flip(nonzero, dims=[1]).argmax(dim=1)
    last = torch.where(nonzero.any(dim=1), last, torch.zeros_like(last))
    return int(last.max()) + 1 if len(tokens) else 1


def encode_trimmed(module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip `CLIP.encode_text`, run on the first `used_length` positions only."""
    from open_clip.transformer import text_global_pool

    n = used_length(tokens)
    text = tokens[:, :n]
    cast = module.transformer.get_cast_dtype()
    x = module.token_embedding(text).to(cast) + module.positional_embedding[:n].to(cast)
    x = module.transformer(x, attn_mask=module.attn_mask[:n, :n])
    x = module.ln_final(x)
    x = text_global_pool(x, text, module.text_pool_type, eos_token_id=getattr(module, "text_eos_id", None))
    proj = module.text_projection
    if proj is not None:
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return x


def encode_by_length(module: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Rows sorted by length into sub-batches of similar length, each trimmed, returned in
    input order. Only this batch's rows decide its sub-batches, so a batch gives the same
    numbers in one process and under torchrun (whose blocks hold whole batches)."""
    lengths = (tokens != 0).sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    out = [encode_trimmed(module, tokens[order[s : s + SUB_BATCH]]) for s in range(0, len(order), SUB_BATCH)]
    result = torch.empty((len(tokens), out[0].shape[1]), dtype=out[0].dtype, device=out[0].device)
    result[order] = torch.cat(out)
    return result


def normalised_gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference between two sets of L2-normalised embeddings."""
    return float((F.normalize(a.float(), dim=-1) - F.normalize(b.float(), dim=-1)).abs().max())
