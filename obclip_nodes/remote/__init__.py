"""The ComfyUI API client that talks to the untrusted cloud server (aiohttp)."""
from .client import CloudClient, CloudError, CloudResult, RemoteSettings

__all__ = ["CloudClient", "CloudError", "CloudResult", "RemoteSettings"]
