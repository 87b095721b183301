"""The pack as a ComfyUI user meets it: Debian's Chromium, driven by Playwright, against a real ComfyUI serving
its own frontend (comfyui-frontend-package: 1.32.9 with ComfyUI 0.3.75, 1.49.6 with 0.33.0). Screenshots go to
tests/browser/artifacts/<ComfyUI version>/ (git-ignored), each also as a small cropped PNG (small/), which is what
docs/images/ holds for the newest host.

No browser is downloaded: scripts/setup.sh installs Debian's chromium. Without it these tests FAIL and say so.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from obclip_nodes.harness.host import REPO

from .frontend import ARTIFACTS

pytestmark = pytest.mark.servers

UI_FILES = sorted((REPO / "workflows").glob("*.json"))
TWO_ATTRIBUTES = "portrait photo of a young woman in a red coat"  # one cell of age (4 values) x gender (2): N = 8


@pytest.fixture(scope="module")
def page(device, browser):
    pg = browser.new_page(viewport={"width": 2400, "height": 1350})  # fit-view keeps text legible
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(device.url, wait_until="domcontentloaded", timeout=90_000)
    pg.wait_for_function("() => window.app?.graph && window.LiteGraph && "
                         "window.app.extensions?.some(e => e.name === 'obclip.nodes')", timeout=90_000)
    pg.page_errors = errors
    yield pg
    pg.close()


LOAD = """async (wf) => {
  await window.app.loadGraphData(structuredClone(wf), true, true, 'obclip-test');
  await new Promise(r => setTimeout(r, 300));
  const reg = window.LiteGraph.registered_node_types;
  const nodes = window.app.graph.nodes ?? window.app.graph._nodes;
  const saved = window.app.graph.serialize();
  const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText);
  return {
    types: nodes.map(n => n.type),
    unregistered: nodes.filter(n => !reg[n.type]).map(n => n.type),
    errors: nodes.filter(n => n.has_errors).map(n => n.type),
    widgets: Object.fromEntries(saved.nodes.map(n => [n.id, n.widgets_values ?? []])),
    names: Object.fromEntries(nodes.map(n => [n.id, (n.widgets ?? []).map(w => w.name + '=' + JSON.stringify(w.value))])),
    dialogs,
  };
}"""


FRAME = """async () => {
  // hide the frontend's promotional banner (a thin strip) so it does not cover the graph
  const strips = [...document.querySelectorAll('div')].filter(el => el.innerText?.includes('Introducing Nodes 2.0')
      && el.getBoundingClientRect().height < 80);
  strips.sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width);
  if (strips.length) strips[0].style.display = 'none';
  try { await window.app.extensionManager.command.execute('Comfy.Canvas.FitView'); }
  catch (e) { window.app.canvas.ds.offset = [40, 80]; window.app.canvas.ds.scale = 0.55; }
}"""


# the nodes' bounding box on screen, in CSS pixels (canvas coordinates through the canvas transform)
BOUNDS = """() => {
  const c = window.app.canvas, ds = c.ds, r = c.canvas.getBoundingClientRect();
  const nodes = window.app.graph.nodes ?? window.app.graph._nodes;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of nodes) {
    const title = window.LiteGraph.NODE_TITLE_HEIGHT ?? 30;
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title - 20);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const s = ds.scale, ox = ds.offset[0], oy = ds.offset[1];
  return {x: r.left + (x0 + ox) * s, y: r.top + (y0 + oy) * s, w: (x1 - x0) * s, h: (y1 - y0) * s};
}"""


def shot(page, name: str) -> Path:
    page.evaluate(FRAME)  # the whole graph in view, as a user would frame it
    page.evaluate("() => window.app.canvas.setDirty(true, true)")
    page.wait_for_timeout(300)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    small(page, path)
    return path


def small(page, path: Path, width: int = 1400) -> Path:
    """The graph cropped from the screenshot and scaled to `width`, 256 colours: small enough for docs/images."""
    from PIL import Image
    b = page.evaluate(BOUNDS)
    view = page.viewport_size
    pad = 16
    box = (max(0, int(b["x"]) - pad), max(0, int(b["y"]) - pad),
           min(view["width"], int(b["x"] + b["w"]) + pad), min(view["height"], int(b["y"] + b["h"]) + pad))
    img = Image.open(path).convert("RGB").crop(box)
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    out = path.parent / "small" / path.name
    out.parent.mkdir(exist_ok=True)
    img.quantize(256, dither=Image.Dither.NONE).save(out, optimize=True)
    return out


def node_by_type(page, t: str) -> str:
    return f"(window.app.graph.nodes ?? window.app.graph._nodes).find(n => n.type === '{t}')"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_every_shipped_workflow_loads_without_missing_nodes_or_widgets(page, path):
    wf = json.loads(path.read_text())
    res = page.evaluate(LOAD, wf)
    assert sorted(res["types"]) == sorted(n["type"] for n in wf["nodes"])
    assert not res["unregistered"] and not res["errors"], res
    assert not [d for d in res["dialogs"] if "missing" in d.lower()], res["dialogs"]
    # every widget value survives a load/save round trip: no missing, extra or shifted widgets
    for n in wf["nodes"]:
        assert res["widgets"][str(n["id"])] == n["widgets_values"], (n["type"], res["names"][str(n["id"])])
    shot(page, f"workflow-{path.stem}")


def test_frontend_extension_api(page):
    """The frontend extension API web/obclip.js relies on (docs/comfyui-internals-used.md), named when it changes."""
    res = page.evaluate("""async () => {
      const { api } = await import('/scripts/api.js');
      const ext = window.app.extensions.find(e => e.name === 'obclip.nodes');
      const node = window.LiteGraph.createNode('ObCLIPCloudPartialSampler');
      const expander = window.LiteGraph.createNode('ObCLIPCandidateExpander');
      return {
        registerExtension: typeof window.app.registerExtension,
        hooks: ext ? ['beforeRegisterNodeDef', 'nodeCreated'].filter(h => typeof ext[h] === 'function') : [],
        fetchApi: typeof api?.fetchApi,
        addWidget: typeof node?.addWidget,
        setDirtyCanvas: typeof node?.setDirtyCanvas,
        comfyClass: node?.comfyClass,
        // nodeCreated ran: the button it adds with node.addWidget is there
        widgets: (node?.widgets ?? []).map(w => w.name),
        // beforeRegisterNodeDef ran: the prototype hooks it wraps are ours
        onExecuted: String(node?.onExecuted ?? '').includes('showText'),
        onDrawForeground: String(expander?.onDrawForeground ?? '').includes('drawBadge'),
      };
    }""")
    want = {"registerExtension": "function", "hooks": ["beforeRegisterNodeDef", "nodeCreated"],
            "fetchApi": "function", "addWidget": "function", "setDirtyCanvas": "function",
            "comfyClass": "ObCLIPCloudPartialSampler", "onExecuted": True, "onDrawForeground": True}
    changed = {k: res[k] for k, v in want.items() if res[k] != v}
    assert not changed, (f"frontend {frontend_version()} changed the extension API web/obclip.js relies on: "
                         f"{changed} (expected {want})")
    assert "test connection" in res["widgets"], res["widgets"]


def frontend_version() -> str:
    import importlib.metadata
    return importlib.metadata.version("comfyui-frontend-package")


def test_privacy_badge_for_a_prompt_with_two_attributes(page):
    page.evaluate(LOAD, json.loads((REPO / "workflows" / "obclip_hybrid.json").read_text()))
    page.evaluate(f"(p) => {{ const n = {node_by_type(page, 'ObCLIPCandidateExpander')}; "
                  "n.widgets.find(w => w.name === 'prompt').value = p; }", TWO_ATTRIBUTES)
    page.wait_for_function(f"() => ({node_by_type(page, 'ObCLIPCandidateExpander')}).obclipBadge?.text"
                           "?.includes('age')", timeout=20_000)
    badge = page.evaluate(f"() => ({node_by_type(page, 'ObCLIPCandidateExpander')}).obclipBadge")
    assert badge["text"].startswith("✔ protected: "), badge
    assert "age" in badge["text"] and "gender" in badge["text"] and "N = 8" in badge["text"], badge
    assert badge["level"] in ("ok", "warn")
    shot(page, "badge-two-attributes")


def test_test_connection_button_reports_the_server(page, device):
    page.evaluate(LOAD, json.loads((REPO / "workflows" / "obclip_hybrid.json").read_text()))
    cloud = node_by_type(page, "ObCLIPCloudPartialSampler")
    page.evaluate(f"(u) => {{ const n = {cloud}; n.widgets.find(w => w.name === 'server_url').value = u; "
                  "n.widgets.find(w => w.name === 'test connection').callback(); }", device.url)
    page.wait_for_function(f"() => ({cloud}).obclipStatus?.includes('reachable')", timeout=20_000)
    text = page.evaluate(f"() => ({cloud}).obclipStatus")
    assert "ObCLIP pack present" in text and "queue" in text and "same ComfyUI" in text, text
    shot(page, "test-connection")


def test_queue_the_local_simulation_from_the_ui_and_see_the_image(page, device):
    page.evaluate(LOAD, json.loads((REPO / "workflows" / "obclip_local_simulation.json").read_text()))
    page.evaluate(f"""() => {{
      const n = {node_by_type(page, 'ObCLIPServerSampler')};
      for (const [k, v] of Object.entries({{width: 32, height: 32, steps: 4, cloud_steps: 2}}))
        n.widgets.find(w => w.name === k).value = v;
      {node_by_type(page, 'ObCLIPCandidateExpander')}.widgets.find(w => w.name === 'prompt').value = {json.dumps(TWO_ATTRIBUTES)};
    }}""")
    t0 = time.monotonic()
    run = page.get_by_role("button", name="Run", exact=True)
    if run.count():
        run.first.click()  # what a user clicks
    else:
        page.evaluate("() => window.app.queuePrompt(0)")
    # 1.32.x keeps outputs in its node-output store (app.nodeOutputs) and draws them; older ones set node.imgs
    find = ("() => { const o = Object.values(window.app.nodeOutputs ?? {}).find(o => o?.images?.length); "
            f"const n = {node_by_type(page, 'SaveImage')}; "
            "return o ? '/view?filename=' + o.images[0].filename : (n.imgs?.[0]?.src ?? null); }")
    page.wait_for_function(find, timeout=180_000)
    elapsed = time.monotonic() - t0
    page.wait_for_timeout(1500)
    src = page.evaluate(find)
    assert "/view?" in src and "obclip_local_sim" in src, src
    badge = page.evaluate(f"() => ({node_by_type(page, 'ObCLIPCandidateExpander')}).obclipBadge")
    assert badge["source"] == "run" and "age" in badge["text"] and "gender" in badge["text"], badge
    hist = device.get("/history")
    assert any(e.get("status", {}).get("status_str") == "success" for e in hist.values())
    shot(page, "local-simulation-finished")
    print(f"queued from the UI to image: {elapsed:.1f} s")
    assert not [e for e in page.page_errors if "obclip" in e.lower()], page.page_errors
