"""Route names of the pack's HTTP surface: one list, used by the client, the cloud server side, the
device-side browser routes and the test doubles alike."""
from __future__ import annotations

# On the cloud (obclip_nodes/cloud_server): served where the pack runs as a cloud.
INFO = "/obclip/info"                      # GET: a few bytes that say the pack is installed
RESULT = "/obclip/result/{prompt_id}"      # GET: the latent payload once; DELETE: drop it
# Both need the request's secret result key (protocol.request.new_result_key) in this header.
RESULT_KEY_HEADER = "X-ObCLIP-Result-Key"

# On the device (obclip_nodes/nodes/routes.py): for the browser extension in web/ only.
PROBE = "/obclip/probe"                    # GET ?url=...: test the connection to a cloud
EXPAND = "/obclip/expand"                  # POST: live candidate preview while the prompt is typed


def result_path(prompt_id: str) -> str:
    return RESULT.format(prompt_id=prompt_id)
