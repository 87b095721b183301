"""What one request to the cloud may ask for."""
from __future__ import annotations

import json

from ..protocol.request import SERVER_SAMPLER


def count_candidates(body: dict) -> int:
    """The largest candidate list of any ObCLIP Server Sampler in a POST /prompt body (0 if none)."""
    most = 0
    graph = body.get("prompt") if isinstance(body, dict) else None
    for node in (graph or {}).values() if isinstance(graph, dict) else ():
        if isinstance(node, dict) and node.get("class_type") == SERVER_SAMPLER:
            value = (node.get("inputs") or {}).get("candidates")
            try:
                items = json.loads(value) if isinstance(value, str) else None
            except ValueError:
                items = None
            if isinstance(items, list):
                most = max(most, len(items))
    return most
