"""Build the UI-format (litegraph) workflow from the API-format one and a server's /object_info.

The UI file is what people drag into ComfyUI and what the template browser lists; the API file is
what scripts queue. Generating one from the other keeps them from drifting apart.

Usage: python -m obclip_nodes.harness.ui_workflow API.json OUT.json [--check]
(starts a throwaway API-only server with the pack to read the node definitions)
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
COLUMN_W, ROW_H = 500, 60  # room for frontends that widen a node to fit its title (1.49.6)
# Outputs that newer ComfyUI hosts added to stock nodes (0.33 made the save nodes pass their input through).
# Left out of the UI files while unlinked, so one file fits every supported host: frontends add a node's
# outputs from its definition when they load it (tests/browser checks this on both frontends).
HOST_ADDED_OUTPUTS = {"SaveImage": {"images"}, "SaveLatent": {"samples"}}


def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES or (isinstance(kind, str) and kind.split(",")[0] in WIDGET_TYPES)


def _ordered_inputs(info: dict) -> list[tuple[str, list]]:
    order = info.get("input_order") or {}
    out = []
    for group in ("required", "optional"):
        specs = info["input"].get(group, {})
        for name in order.get(group, list(specs)):
            out.append((name, specs[name]))
    return out


def _options(spec) -> dict:
    return (spec[1] if len(spec) > 1 else None) or {}  # a model-name combo may come without options


def _socket_type(spec) -> str:
    return "COMBO" if isinstance(spec[0], list) else spec[0]


def api_to_ui(api: dict, object_info: dict) -> dict:
    ids = {nid: i + 1 for i, nid in enumerate(api)}
    # columns by dependency depth, so the graph reads left to right
    depth: dict[str, int] = {}

    def d(nid):
        if nid not in depth:
            ups = [v[0] for v in api[nid]["inputs"].values() if isinstance(v, list)]
            depth[nid] = 1 + max((d(u) for u in ups), default=-1)
        return depth[nid]
    for nid in api:
        d(nid)
    rows: dict[int, int] = {}
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for nid, node in api.items():
        info = object_info[node["class_type"]]
        inputs, widgets = [], []
        for name, spec in _ordered_inputs(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list)
            if linked:
                link_id = len(links) + 1
                src, slot = value
                links.append([link_id, ids[src], slot, ids[nid], len(inputs), _socket_type(spec)])
                out_links.setdefault((src, slot), []).append(link_id)
            if _is_widget(spec):
                if linked:
                    inputs.append({"name": name, "type": _socket_type(spec), "widget": {"name": name},
                                   "link": link_id})
                    # the frontend keeps a linked input's widget and fills widgets_values by position,
                    # so the linked widget still takes its slot (with its default)
                    widgets.append(_options(spec).get("default"))
                    if _options(spec).get("control_after_generate"):
                        widgets.append("fixed")
                else:
                    widgets.append(value if name in node["inputs"] else _options(spec).get("default"))
                    if _options(spec).get("control_after_generate"):
                        widgets.append("fixed")
                    if _options(spec).get("image_upload"):
                        widgets.append("image")  # the frontend's upload button saves its own value
            else:  # a socket-only input (MODEL, LATENT, ...) is listed whether linked or not
                inputs.append({"name": name, "type": _socket_type(spec), "link": link_id if linked else None})
        col = depth[nid]
        row = rows.get(col, 0)
        rows[col] = row + 140 + 34 * (len(widgets) + len(inputs))
        nodes.append({
            "id": ids[nid], "type": node["class_type"], "pos": [40 + col * COLUMN_W, 40 + row],
            "size": [380, 80 + 26 * (len(widgets) + len(inputs))], "flags": {}, "order": 0, "mode": 0,
            "inputs": inputs,
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(info["output_name"], info["output"]))],
            "properties": {"Node name for S&R": node["class_type"]},
            "widgets_values": widgets,
            **({"title": node["_meta"]["title"]} if node.get("_meta", {}).get("title") else {}),
        })
    by_id = {n["id"]: n for n in nodes}
    for (src, slot), lids in out_links.items():
        by_id[ids[src]]["outputs"][slot]["links"] = lids
    for n in nodes:
        added = HOST_ADDED_OUTPUTS.get(n["type"], set())
        n["outputs"] = [o for o in n["outputs"] if o["links"] or o["name"] not in added]
    for order, nid in enumerate(sorted(api, key=lambda n: (depth[n], ids[n]))):
        by_id[ids[nid]]["order"] = order
    return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
            "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4}


def main(argv: list[str]) -> int:
    from .servers import ComfyServer, prepare_base
    import tempfile
    api_path, out_path, check = Path(argv[0]), Path(argv[1]), "--check" in argv
    with tempfile.TemporaryDirectory() as tmp, ComfyServer("ui-workflow", prepare_base(Path(tmp))) as s:
        info = s.get("/object_info")
    text = json.dumps(api_to_ui(json.loads(api_path.read_text()), info), indent=1) + "\n"
    if check:
        same = out_path.exists() and out_path.read_text() == text
        print("up to date" if same else f"{out_path} is stale: regenerate it")
        return 0 if same else 1
    out_path.write_text(text)
    print(out_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
