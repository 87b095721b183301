// ObCLIP node pack: show each node's status text (candidates, what the cloud learns, bytes fetched)
// on the node itself, and mark the privacy role of each node by colour.
import { app } from "../../scripts/app.js";

const CLIENT_PRIVATE = new Set(["ObCLIPCandidateExpander", "ObCLIPLatentSelector", "ObCLIPDeviceFinisher"]);
const TALKS_TO_CLOUD = new Set(["ObCLIPCloudPartialSampler", "ObCLIPCacheAccelerator"]);
const RUNS_ON_CLOUD = new Set(["ObCLIPServerSampler", "ObCLIPServerReturn"]);

function showText(node, text) {
  let w = node.widgets?.find((w) => w.name === "obclip_status");
  if (!w) {
    w = node.addWidget("text", "obclip_status", "", () => {}, { serialize: false });
    w.serialize = false; // never saved into the workflow JSON or PNG metadata
  }
  w.value = text;
  node.setDirtyCanvas(true, true);
}

app.registerExtension({
  name: "obclip.nodes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("ObCLIP")) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      if (message?.text?.length) showText(this, message.text.join("\n"));
    };
  },
  nodeCreated(node) {
    const t = node.comfyClass;
    if (CLIENT_PRIVATE.has(t)) { node.color = "#2a4d2a"; node.bgcolor = "#1e331e"; }       // stays local
    else if (TALKS_TO_CLOUD.has(t)) { node.color = "#4d3f1e"; node.bgcolor = "#332a14"; }  // public data only
    else if (RUNS_ON_CLOUD.has(t)) { node.color = "#1e3a4d"; node.bgcolor = "#142733"; }
  },
});
