"""The ComfyUI API client that talks to the untrusted cloud server (aiohttp).

transport.py (HTTP and WebSocket, errors that say what happened), failover.py (which server, and
retrying a run lost with its worker), client.py (one run: preflight, submit, follow, fetch, verify).
"""
from .client import CloudClient, CloudResult, RemoteSettings
from .transport import CloudCancelled, CloudError, CloudUnreachable, CloudWorkerLost

__all__ = ["CloudClient", "CloudError", "CloudUnreachable", "CloudWorkerLost", "CloudCancelled", "CloudResult",
           "RemoteSettings"]
