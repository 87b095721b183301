"""Write a single-file checkpoint (safetensors only) from a converted state dict."""
from __future__ import annotations

from pathlib import Path


def write_checkpoint(state_dict: dict, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save with safetensors; shared or non-contiguous tensors are copied first (safetensors refuses them)."""
    from safetensors.torch import save_file
    seen, clean = set(), {}
    for k, t in state_dict.items():
        ptr = t.data_ptr() if t.numel() else None
        if ptr is not None and ptr in seen or not t.is_contiguous():
            t = t.clone().contiguous()
        elif ptr is not None:
            seen.add(ptr)
        clean[k] = t
    # one metadata key at most from the caller, so files stay byte-identical across runs
    save_file(clean, str(path), metadata=metadata or None)
