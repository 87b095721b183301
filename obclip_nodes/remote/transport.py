"""HTTP and WebSocket to one cloud endpoint, with errors that say what happened.

Every failure becomes one of three errors, because what the caller does next depends on which:

* `CloudError`: the cloud answered, and the answer is the problem (refused credentials, a rejected
  request, a redirect). Trying again elsewhere would get the same answer.
* `CloudUnreachable`: no answer at all (refused connection, DNS, TLS, timeout): the next URL may work.
* `CloudWorkerLost`: the worker that held (or was about to hold) our run went away: the connection
  dropped, a load balancer answered 502/503/504, or the server no longer knows our prompt. failover.py
  retries the run elsewhere.

No redirect is followed (a credential never leaves its server), and a cookie the server sets (a load
balancer's stickiness) lives in the session, which lasts one attempt only.
"""
from __future__ import annotations

import asyncio
import json

import aiohttp

from . import endpoints as ep_mod
from .endpoints import Endpoint, EndpointError, TOKEN_ENV, URL_ENV

BALANCER_STATUSES = (502, 503, 504)


class CloudError(RuntimeError):
    """The cloud could not produce the latents; the message says what to change."""


class CloudUnreachable(CloudError):
    """A connection-level failure (refused, DNS, TLS, timeout): the next URL may work."""


class CloudWorkerLost(CloudUnreachable):
    """The worker running (or about to run) our prompt went away; the run may be retried on another."""


class CloudCancelled(CloudError):
    pass


def server_message(data: bytes) -> str:
    """The message of a ComfyUI-shaped JSON error ("" when the body is not one)."""
    try:
        err = json.loads(data).get("error")
        msg = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        return ""
    return msg if isinstance(msg, str) else ""


def balancer_error(ep: Endpoint, method: str, path: str, status: int, data: bytes) -> CloudWorkerLost | None:
    """A 502/503/504 that ComfyUI did not write (no JSON error): a load balancer or proxy in front of the
    cloud found no live worker for us."""
    if status not in BALANCER_STATUSES or server_message(data):
        return None
    what = {502: "bad gateway", 503: "service unavailable", 504: "gateway timeout"}[status]
    return CloudWorkerLost(f"the load balancer or proxy at {ep.base} answered {method} {path} with HTTP {status} "
                           f"({what}): the cloud worker behind it is down or was lost")


class Transport:
    """One attempt's HTTP calls and WebSocket to the cloud; counts the bytes both ways."""

    def __init__(self, request_timeout: float):
        self.request_timeout = request_timeout
        self.bytes_sent = self.bytes_received = 0

    def session(self, request_timeout: float | None = None) -> aiohttp.ClientSession:
        t = request_timeout or self.request_timeout
        # A load balancer's stickiness cookie must work for IP-address hosts too (unsafe=True); the jar
        # lives for this session (one attempt) only, so a retry lets the balancer pick a live worker.
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=t, sock_read=t),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True))

    @staticmethod
    def ssl(ep: Endpoint):
        try:
            return ep.ssl_context() or True
        except EndpointError as e:
            raise CloudError(str(e)) from None

    async def request(self, s: aiohttp.ClientSession, ep: Endpoint, method: str, path: str, *,
                      body: bytes | None = None, max_bytes: int | None = None,
                      extra_headers: dict | None = None) -> tuple[int, bytes, dict]:
        headers = {**ep.headers, **(extra_headers or {})}
        if body is not None:
            headers["Content-Type"] = "application/json"
            self.bytes_sent += len(body)
        try:
            async with s.request(method, ep.base + path, data=body, headers=headers, ssl=self.ssl(ep),
                                 allow_redirects=False) as r:
                if 300 <= r.status < 400:
                    raise CloudError(f"the cloud at {ep.base} redirected {method} {path} to "
                                     f"{r.headers.get('Location', '?')}; redirects are not followed (credentials "
                                     "stay with their server): give the final URL as server_url")
                if max_bytes is not None and (r.content_length or 0) > max_bytes:
                    raise CloudError(f"the cloud's latent payload is {r.content_length} bytes, over the "
                                     f"{max_bytes} byte limit; refusing to download it")
                chunks, n = [], 0
                async for chunk in r.content.iter_chunked(1 << 16):
                    n += len(chunk)
                    if max_bytes is not None and n > max_bytes:
                        raise CloudError(f"the cloud's latent payload exceeds the {max_bytes} byte limit; "
                                         "download stopped")
                    chunks.append(chunk)
                data = b"".join(chunks)
                self.bytes_received += len(data)
                if r.content_length is not None and len(data) != r.content_length:
                    raise CloudWorkerLost(f"the answer from {ep.base}{path} was cut off "
                                          f"({len(data)} of {r.content_length} bytes)")
                lost = balancer_error(ep, method, path, r.status, data)
                if lost:
                    raise lost
                if r.status == 401 or (r.status == 403 and path != "/prompt"):
                    msg = server_message(data)
                    raise CloudError(
                        f"the cloud at {ep.base} refused us (HTTP {r.status}: "
                        f"{'no credentials accepted' if r.status == 401 else 'wrong credentials'}"
                        f"{', ' + msg if msg else ''}); credentials used: {ep.auth_source}. Set the bearer token "
                        f"for this server in the secrets file ({ep_mod.SECRETS_ENV}, an entry under \"servers\") or "
                        f"in {TOKEN_ENV} together with {URL_ENV}={ep.base}")
                return r.status, data, dict(r.headers)
        except aiohttp.ClientConnectorCertificateError as e:
            raise CloudUnreachable(f"the TLS certificate of {ep.base} is not trusted ({e.certificate_error}); "
                                   f"give its CA bundle in {ep_mod.CA_ENV} or the secrets file's ca_file") from None
        except aiohttp.ClientConnectorDNSError:
            raise CloudUnreachable(f"cannot resolve the host of {ep.base} (DNS failure); check the server URL") \
                from None
        except aiohttp.ClientConnectorError as e:
            raise CloudUnreachable(f"cannot connect to the cloud at {ep.base} ({e.os_error.strerror or e}); "
                                   "is it running, and is the port right?") from None
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as e:
            raise CloudWorkerLost(f"the cloud at {ep.base} dropped the connection during {method} {path} "
                                  f"({type(e).__name__}); it may have crashed or restarted") from None
        except asyncio.TimeoutError:
            raise CloudUnreachable(f"the cloud at {ep.base} did not answer {method} {path} within "
                                   f"{self.request_timeout:g} s (request timeout)") from None
        except aiohttp.ClientError as e:
            raise CloudUnreachable(f"cannot talk to the cloud at {ep.base}: {type(e).__name__}: {e}") from None

    async def json(self, s, ep: Endpoint, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        status, data, _ = await self.request(s, ep, method, path, body=body)
        try:
            obj = json.loads(data) if data else {}
        except ValueError:
            raise CloudError(f"the server at {ep.base} answered {method} {path} with HTTP {status} and "
                             f"non-JSON ({data[:120]!r}); is this a ComfyUI server?") from None
        if not isinstance(obj, (dict, list)):
            raise CloudError(f"the server at {ep.base} answered {method} {path} with HTTP {status} and JSON "
                             f"that is not an object ({data[:120]!r}); is this a ComfyUI server?")
        return status, obj

    async def get_optional(self, s, ep: Endpoint, path: str) -> dict:
        """A GET whose absence (404 or non-JSON from an older server) is an answer, not an error."""
        status, data, _ = await self.request(s, ep, "GET", path)
        try:
            obj = json.loads(data) if status == 200 and data else {}
        except ValueError:
            return {}
        return obj if isinstance(obj, dict) else {}

    async def get(self, s, ep: Endpoint, path: str):
        _, obj = await self.json(s, ep, "GET", path)
        return obj

    async def ws_connect(self, s, ep: Endpoint, client_id: str):
        try:
            return await s.ws_connect(f"{ep.ws_base}/ws?clientId={client_id}", headers=ep.headers,
                                      ssl=self.ssl(ep), heartbeat=20, max_msg_size=0,
                                      timeout=aiohttp.ClientWSTimeout(ws_close=self.request_timeout))
        except aiohttp.WSServerHandshakeError as e:
            if e.status in (401, 403):
                raise CloudError(f"the cloud at {ep.base} refused the WebSocket (HTTP {e.status}); set the "
                                 f"bearer token in {TOKEN_ENV} or the secrets file") from None
            if e.status in BALANCER_STATUSES:
                raise CloudWorkerLost(f"the load balancer or proxy at {ep.base} answered the WebSocket with HTTP "
                                      f"{e.status}: the cloud worker behind it is down or was lost") from None
            raise CloudUnreachable(f"the cloud at {ep.base} refused the WebSocket (HTTP {e.status})") from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise CloudUnreachable(f"cannot open the WebSocket of {ep.base}: {type(e).__name__}: {e}") from None
