"""The ComfyUI API client that talks to the untrusted cloud server (aiohttp), and the pack's server side."""
from .client import CloudCancelled, CloudClient, CloudError, CloudResult, CloudUnreachable, RemoteSettings

__all__ = ["CloudClient", "CloudError", "CloudUnreachable", "CloudCancelled", "CloudResult", "RemoteSettings"]
