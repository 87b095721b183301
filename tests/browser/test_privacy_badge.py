"""The Candidate Expander's privacy badge in its three states, in the real frontend (Debian's Chromium via
Playwright, the browser tests' real ComfyUI with the pack): protected (green), refused (slate: nothing is sent)
and explicitly allowed (red, listing the words the server reads). Screenshots: tests/browser/artifacts/badge-*.png
(the committed copies in docs/images/ come from this test)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .frontend import ARTIFACTS

pytestmark = pytest.mark.servers

PROTECTED = "portrait photo of a young Asian woman, wearing a yellow shirt, blue background"
SENSITIVE = "portrait photo of a Muslim woman wearing a hijab, soft light"


@pytest.fixture(scope="module")
def page(device, browser):
    """A page of its own on the browser tests' device server (the expander needs no models)."""
    pg = browser.new_page(viewport={"width": 1300, "height": 760})
    pg.goto(device.url, wait_until="domcontentloaded", timeout=90_000)
    pg.wait_for_function("() => window.app?.graph && window.LiteGraph && "
                         "window.app.extensions?.some(e => e.name === 'obclip.nodes')", timeout=90_000)
    pg.evaluate("""() => {
      window.app.graph.clear();
      const n = window.LiteGraph.createNode('ObCLIPCandidateExpander');
      n.pos = [30, 150]; n.size = [760, 330];
      window.app.graph.add(n);
      window.app.canvas.ds.scale = 1; window.app.canvas.ds.offset = [90, 20];
      window.obclipNode = n;
      const strips = [...document.querySelectorAll('div')].filter(el => el.innerText?.includes('Introducing')
          && el.getBoundingClientRect().height < 80);
      if (strips.length) strips[0].style.display = 'none';
    }""")
    yield pg
    pg.close()


def _set(page, prompt: str, allow: bool) -> dict:
    page.evaluate("""([p, a]) => {
      const n = window.obclipNode;
      n.widgets.find(w => w.name === 'prompt').value = p;
      n.widgets.find(w => w.name === 'allow_unprotected').value = a;
      n.obclipBadge = null;
    }""", [prompt, allow])
    page.wait_for_function("() => window.obclipNode.obclipBadge?.text", timeout=20_000)
    page.evaluate("() => window.app.canvas.setDirty(true, true)")
    page.wait_for_timeout(400)
    return page.evaluate("""() => {
      const n = window.obclipNode, ds = window.app.canvas.ds, r = window.devicePixelRatio || 1;
      const th = window.LiteGraph.NODE_TITLE_HEIGHT ?? 30;
      // a pixel inside the badge, left of its text: the badge is drawn from x = 0, y = -title - 24 (20 high)
      const x = (n.pos[0] + 3 + ds.offset[0]) * ds.scale * r, y = (n.pos[1] - th - 14 + ds.offset[1]) * ds.scale * r;
      const px = Array.from(window.app.canvas.canvas.getContext('2d').getImageData(x, y, 1, 1).data.slice(0, 3));
      return {...n.obclipBadge, status: n.obclipStatus, pixel: px};
    }""")


def _close(rgb, hex_colour: str) -> bool:
    want = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    return all(abs(a - b) <= 12 for a, b in zip(rgb, want))


def _shot(page, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), clip={"x": 60, "y": 50, "width": 900, "height": 470})
    docs = Path(__file__).resolve().parents[2] / "docs" / "images"
    if docs.is_dir() and os.environ.get("OBCLIP_UPDATE_DOC_IMAGES") == "1":
        shutil.copy(path, docs / path.name)
    return path


def test_badge_protected(page):
    b = _set(page, PROTECTED, False)
    assert b["outcome"] == "protected" and b["level"] in ("ok", "warn"), b
    assert b["text"].startswith("✔ protected: age, ethnicity, gender · N = 40"), b
    assert "Outcome: protected" in b["status"]
    assert _close(b["pixel"], "#2e7d32") or _close(b["pixel"], "#b26a00"), b["pixel"]
    _shot(page, "badge-protected")


def test_badge_refused(page):
    b = _set(page, SENSITIVE, False)
    assert b["outcome"] == "refused" and b["level"] == "refused", b
    assert "REFUSED" in b["text"] and "Muslim (religion)" in b["text"], b
    assert "REFUSED (preview): nothing will be sent" in b["status"] and "'Muslim' (religion)" in b["status"]
    assert _close(b["pixel"], "#37474f"), b["pixel"]
    _shot(page, "badge-refused")


def test_badge_explicitly_allowed_is_red(page):
    b = _set(page, SENSITIVE, True)
    assert b["outcome"] == "allowed" and b["level"] == "allowed", b
    assert "UNPROTECTED" in b["text"] and "Muslim (religion)" in b["text"] and "N = 2" in b["text"], b
    assert _close(b["pixel"], "#d50000"), b["pixel"]                # red
    assert "ALLOWED UNPROTECTED" in b["status"]
    _shot(page, "badge-allowed")


TWO_PEOPLE = "a Black woman and a White man holding hands, wedding photo"


def test_badge_anonymity_block_on_two_people(page):
    """Two described people pass max_candidates: the badge shows the block sent (N of the total, which block of
    how many) and, below, what the block tells the server; the preview text says the same."""
    from obclip_nodes.privacy import expand_prompt
    e = expand_prompt(TWO_PEOPLE)
    assert e.blocked
    b = _set(page, TWO_PEOPLE, False)
    want = f"N = {e.n} of {e.total} (block {e.block_index + 1} of {e.block_count})"
    assert b["outcome"] == "protected" and b["text"].startswith(f"✔ protected: ethnicity, gender · {want}"), b
    assert b["detail"] == f"server learns: {e.block_learns}", b
    assert f"Anonymity block: {want}. The server learns: {e.block_learns}" in b["status"]
    assert _close(b["pixel"], "#2e7d32") or _close(b["pixel"], "#b26a00"), b["pixel"]
    _shot(page, "badge-block")


def test_badge_after_a_run_reads_the_block_line(page):
    """After a run the badge is rebuilt from the node's own text: the 'Anonymity block:' line it writes."""
    from obclip_nodes.privacy import expand_prompt
    e = expand_prompt(TWO_PEOPLE)
    # the node's first two lines (obclip_nodes/nodes/expander.py report_lines and block_line)
    text = (f"N = {e.n} candidates; attributes: {', '.join(e.attributes)}\n"
            f"Anonymity block: N = {e.n} of {e.total} (block {e.block_index + 1} of {e.block_count}). "
            f"The server learns: {e.block_learns}\nOutcome: protected")
    b = page.evaluate("""async (text) => {
      const m = await import('/extensions/obclip/obclip.js');
      return m.badgeFrom(m.parseExpanderReport(text));
    }""", text)
    assert b["text"] == (f"✔ protected: ethnicity, gender · N = {e.n} of {e.total} "
                         f"(block {e.block_index + 1} of {e.block_count})"), b
    assert b["detail"] == f"server learns: {e.block_learns}", b
