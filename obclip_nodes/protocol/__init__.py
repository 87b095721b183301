"""What crosses the wire between the client and the cloud ComfyUI.

Everything the server receives is built here, from public data only (the candidate list, the
user's generation settings); nothing in this package ever sees which candidate is real.
"""
from .errors import ProtocolError
from .handoff import Handoff
from .request import CloudRequest, SERVER_NODE_IDS, build_server_prompt
from .payload import LatentPayload, decode_payload, decode_payload_bytes, encode_payload, encode_payload_bytes

__all__ = [
    "ProtocolError", "Handoff", "CloudRequest", "SERVER_NODE_IDS", "build_server_prompt",
    "LatentPayload", "encode_payload", "decode_payload", "encode_payload_bytes", "decode_payload_bytes",
]
