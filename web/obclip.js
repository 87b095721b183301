// ObCLIP node pack, browser side.
// - every ObCLIP node: its status text (candidates, what the cloud learns, bytes fetched) on the node, and its
//   privacy role as a colour (green: keeps private data; amber: sends public data only; blue: runs on the cloud)
// - Candidate Expander: a privacy badge above the node in one of three states -- protected (green; amber with
//   leak warnings), refused (slate: nothing is sent) or explicitly allowed (red: lists the words the server
//   reads) -- with the protected attribute types, N and leak warnings, live
//   while the prompt is typed (POST /obclip/expand on THIS ComfyUI; the text goes nowhere else) and
//   replaced by the executed node's own report after a run
// - Cloud Partial Sampler: a "test connection" button (GET /obclip/probe on THIS ComfyUI, which asks the cloud
//   for its queue, the pack and its checkpoints; the token stays on the server side)
// Nothing here is serialized into the workflow JSON or PNG metadata.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXPANDER = "ObCLIPCandidateExpander";
const CLOUD = "ObCLIPCloudPartialSampler";
const CLIENT_PRIVATE = new Set([EXPANDER, "ObCLIPLatentSelector", "ObCLIPDeviceFinisher"]);
const TALKS_TO_CLOUD = new Set([CLOUD, "ObCLIPCacheAccelerator"]);
const RUNS_ON_CLOUD = new Set(["ObCLIPServerSampler", "ObCLIPServerReturn"]);
// protected: green (amber with leak warnings); refused: slate, nothing is sent; allowed: RED, words leak
const BADGE_COLOURS = { ok: "#2e7d32", warn: "#b26a00", refused: "#37474f", allowed: "#d50000", busy: "#455a64" };

function noSerialize(w) {
  w.serialize = false;
  w.options = { ...(w.options || {}), serialize: false };
  return w;
}

function showText(node, text) {
  let w = node.widgets?.find((w) => w.name === "obclip_status");
  if (!w) w = noSerialize(node.addWidget("text", "obclip_status", "", () => {}, { serialize: false }));
  w.value = text;
  node.obclipStatus = text;
  node.setDirtyCanvas(true, true);
}

// ---------------------------------------------------------------- privacy badge (Candidate Expander)
export function blockText(block) {
  // "N = 20 of 100 (block 4 of 5)": the candidates sent are one anonymity block of the full set
  return block ? `N = ${block.n} of ${block.total} (block ${block.index + 1} of ${block.count})` : "";
}

export function badgeFrom({ n, attributes, leak_warnings, error, outcome, unprotected, block, block_learns }) {
  // three outcomes: protected / refused / explicitly allowed (red)
  const words = (unprotected || []).map((u) => `${u.word} (${u.type})`).join(", ");
  if (error || outcome === "refused") {
    const first = String(error || "").split("\n")[0].replace(/^refused: /, "");
    return { level: "refused", outcome: "refused",
             text: `✖ REFUSED · nothing is sent · ${words ? "unprotected: " + words : first}` };
  }
  const warnings = leak_warnings?.length || 0;
  const attrs = attributes?.length ? attributes.join(", ") : "none";
  if (outcome === "allowed") {
    return { level: "allowed", outcome: "allowed", warnings: leak_warnings || [],
             text: `⚠ UNPROTECTED (allowed) · server reads: ${words} · protects: ${attrs} · N = ${n}` };
  }
  const blk = block ? blockText({ ...block, n }) : "";
  let text = `✔ protected: ${attrs} · ${blk || `N = ${n}`}`;
  if (n <= 1) text = "✔ protected · nothing sensitive found · N = 1";
  if (warnings) text += ` · ⚠ ${warnings} leak warning${warnings > 1 ? "s" : ""}`;
  const out = { level: warnings ? "warn" : "ok", outcome: "protected", text, warnings: leak_warnings || [] };
  if (block) out.detail = `server learns: ${block_learns || "which block"}`;
  return out;
}

export function parseExpanderReport(text) {
  // the node's ui text: "N = 4 candidates; attributes: age, gender" then "Outcome: ..."
  const m = /^N = (\d+) candidates; attributes: (.*)$/m.exec(text);
  if (!m) return null;
  const attributes = m[2] === "none" ? [] : m[2].split(",").map((s) => s.trim());
  const leak_warnings = [...text.matchAll(/^Leak warning: (.*)$/gm)].map((x) => x[1]);
  const allowed = /^Outcome: ALLOWED UNPROTECTED -- these words reach the server as written: (.*)$/m.exec(text);
  const unprotected = allowed ? allowed[1].split("; ").map((s) => {
    const w = /^'(.*)' \((.*)\)$/.exec(s);
    return w ? { word: w[1], type: w[2] } : { word: s, type: "?" };
  }) : [];
  // "Anonymity block: N = 20 of 100 (block 4 of 5). The server learns: ..."
  const b = /^Anonymity block: N = (\d+) of (\d+) \(block (\d+) of (\d+)\)\. The server learns: (.*)$/m.exec(text);
  const block = b ? { index: Number(b[3]) - 1, count: Number(b[4]), total: Number(b[2]) } : null;
  return { n: Number(m[1]), attributes, leak_warnings, outcome: allowed ? "allowed" : "protected", unprotected,
           block, block_learns: b ? b[5] : "" };
}

function setBadge(node, badge) {
  node.obclipBadge = badge;
  node.setDirtyCanvas(true, true);
}

function wrap(ctx, text, width, maxLines) {
  // greedy word wrap; the last line ends in "…" when the text is longer
  const lines = [];
  let line = "";
  for (const word of text.split(" ")) {
    const next = line ? `${line} ${word}` : word;
    if (line && ctx.measureText(next).width > width) {
      lines.push(line);
      line = word;
      if (lines.length === maxLines) break;
    } else line = next;
  }
  if (lines.length < maxLines) lines.push(line);
  else lines[maxLines - 1] += " …";
  return lines;
}

function drawBadge(node, ctx) {
  const b = node.obclipBadge;
  if (!b || node.flags?.collapsed) return;
  ctx.save();
  ctx.font = "12px sans-serif";
  const maxW = Math.max(node.size[0], 560);
  // an anonymity block adds the rows that say what the block tells the server
  const detail = b.detail ? wrap(ctx, b.detail, maxW - 16, 4) : [];
  const h = 20 + detail.length * 15;
  const y = -(globalThis.LiteGraph?.NODE_TITLE_HEIGHT ?? 30) - h - 4;
  const w = detail.length ? maxW : Math.min(Math.max(ctx.measureText(b.text).width + 16, 120), maxW);
  ctx.fillStyle = BADGE_COLOURS[b.level] || BADGE_COLOURS.busy;
  ctx.beginPath();
  ctx.roundRect ? ctx.roundRect(0, y, w, h, 6) : ctx.rect(0, y, w, h);
  ctx.fill();
  ctx.fillStyle = "#fff";
  ctx.textBaseline = "middle";
  ctx.fillText(b.text, 8, y + 10, w - 16);
  detail.forEach((line, i) => ctx.fillText(line, 8, y + 20 + 15 * i + 6, w - 16));
  ctx.restore();
}

function watchPrompt(node) {
  // live preview: poll the widgets (works for the textarea DOM widget and for programmatic changes)
  let last = null, timer = null, seq = 0, attached = false;
  const read = () => Object.fromEntries(
    ["prompt", "preset", "attributes", "max_candidates", "allow_unprotected"].map((k) => [k, node.widgets?.find((w) => w.name === k)?.value]));
  const tick = () => {
    if (!node.graph) { if (attached) clearInterval(timer); return; }  // not yet added, or removed
    attached = true;
    const now = read();
    const key = JSON.stringify(now);
    if (key === last) return;
    last = key;
    if (!now.prompt) { setBadge(node, null); return; }
    const mine = ++seq;
    api.fetchApi("/obclip/expand", { method: "POST", body: JSON.stringify(now),
                                     headers: { "Content-Type": "application/json" } })
      .then((r) => r.json())
      .then((res) => {
        if (mine !== seq) return; // a newer edit is on its way
        const badge = badgeFrom(res);
        badge.source = "preview";
        setBadge(node, badge);
        if (res.error) {
          showText(node, `REFUSED (preview): nothing will be sent.\n${res.error}`);
        } else {
          showText(node, [`N = ${res.n} candidates (preview, computed on this machine)`,
                          ...(res.block ? [`Anonymity block: ${blockText({ ...res.block, n: res.n })}. ` +
                                           `The server learns: ${res.block_learns}`] : []),
                          `Outcome: ${res.outcome === "allowed" ? "ALLOWED UNPROTECTED: " +
                            res.unprotected.map((u) => `'${u.word}' (${u.type})`).join("; ") : "protected"}`,
                          ...(res.normalisations || []).map((x) => `Normalised: ${x}`),
                          ...res.candidates.slice(0, 8).map((c, i) => `  ${i}: ${c}`),
                          ...(res.candidates.length > 8 ? [`  … ${res.candidates.length - 8} more`] : []),
                          ...res.leak_warnings.map((w) => `Leak warning: ${w}`)].join("\n"));
        }
      })
      .catch(() => {});
  };
  timer = setInterval(tick, 500);
  tick();
}

// ---------------------------------------------------------------- test connection (Cloud Partial Sampler)
export function describeProbe(res) {
  if (res.error) return `✖ ${res.error}`;
  return res.servers.map((s) => {
    if (!s.reachable) return `✖ ${s.url}: unreachable (${s.error || "no answer"})`;
    if (s.error) return `✖ ${s.url}: ${s.error}`;
    const parts = [`✔ ${s.url}: reachable (${s.latency_ms} ms)`,
                   s.pack ? "ObCLIP pack present" : "no ObCLIP pack (stock-nodes fallback)",
                   `queue ${s.queue}`, `${s.checkpoints.length} checkpoint(s)`];
    let line = parts.join(" · ");
    if (s.warning) line += `\n⚠ ${s.warning}`;
    return line;
  }).join("\n");
}

async function testConnection(node) {
  const url = node.widgets?.find((w) => w.name === "server_url")?.value || "";
  const ckpt = node.widgets?.find((w) => w.name === "cloud_checkpoint")?.value || "";
  showText(node, `testing ${url} …`);
  try {
    const r = await api.fetchApi("/obclip/probe?url=" + encodeURIComponent(url));
    const res = await r.json();
    let text = describeProbe(res);
    const ok = res.servers?.filter((s) => s.reachable && !s.error) || [];
    if (ok.length && ckpt && !ok.some((s) => s.checkpoints.includes(ckpt)))
      text += `\n⚠ no server has cloud_checkpoint "${ckpt}"; available: ${ok[0].checkpoints.join(", ") || "(none)"}`;
    node.obclipProbe = res;
    showText(node, text);
  } catch (e) {
    showText(node, `✖ could not ask this ComfyUI to probe: ${e}`);
  }
}

app.registerExtension({
  name: "obclip.nodes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("ObCLIP")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text?.length ? message.text.join("\n") : null;
      if (text) showText(this, text);
      if (text && nodeData.name === EXPANDER) {
        const report = parseExpanderReport(text);
        if (report) setBadge(this, { ...badgeFrom(report), source: "run" });
      }
    };
    if (nodeData.name === EXPANDER) {
      const onDrawForeground = nodeType.prototype.onDrawForeground;
      nodeType.prototype.onDrawForeground = function (ctx) {
        onDrawForeground?.apply(this, arguments);
        drawBadge(this, ctx);
      };
    }
  },
  nodeCreated(node) {
    const t = node.comfyClass;
    if (CLIENT_PRIVATE.has(t)) { node.color = "#2a4d2a"; node.bgcolor = "#1e331e"; }       // stays local
    else if (TALKS_TO_CLOUD.has(t)) { node.color = "#4d3f1e"; node.bgcolor = "#332a14"; }  // public data only
    else if (RUNS_ON_CLOUD.has(t)) { node.color = "#1e3a4d"; node.bgcolor = "#142733"; }
    if (t === EXPANDER) watchPrompt(node);
    if (t === CLOUD) noSerialize(node.addWidget("button", "test connection", null, () => testConnection(node)));
  },
});
