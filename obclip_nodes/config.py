"""Every ``OBCLIP_*`` setting, read and validated in one place.

Nothing here raises at import, and one bad value never stops the pack from loading: `settings()`
parses each variable on its own, keeps the default for a bad one and records a message that names
the variable and the fix. The feature that needs the setting raises that message when it is used
(`Settings.require`), so a typo in a cloud-only setting cannot break a device's Expander.

Secrets (tokens, passwords) are read here too, but their values never appear in a message.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "OBCLIP_"


class ConfigError(ValueError):
    """A setting with a value the pack cannot use; the message names the variable and the fix."""


def _flag(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use 1 or 0")


def _positive_int(raw: str) -> int:
    try:
        v = int(raw.strip())
    except ValueError:
        raise ValueError("use a whole number above 0") from None
    if v <= 0:
        raise ValueError("use a whole number above 0")
    return v


def _count(raw: str) -> int:
    try:
        v = int(raw.strip())
    except ValueError:
        raise ValueError("use a whole number, 0 or more") from None
    if v < 0:
        raise ValueError("use a whole number, 0 or more")
    return v


def _positive_float(raw: str) -> float:
    try:
        v = float(raw.strip())
    except ValueError:
        raise ValueError("use a number above 0") from None
    if not v > 0 or v == float("inf"):
        raise ValueError("use a number above 0")
    return v


def _text(raw: str) -> str:
    return raw.strip()


def _family(raw: str) -> str:
    v = raw.strip().upper() or "SD15"
    if v not in ("SD15", "SDXL"):
        raise ValueError("use SD15 or SDXL")
    return v


@dataclass(frozen=True)
class Setting:
    env: str
    parse: object
    default: object
    doc: str
    secret: bool = False


# name -> Setting. The single list of what the pack reads from the environment.
SETTINGS: dict[str, Setting] = {s.env[len(PREFIX):].lower(): s for s in (
    # device (client) side
    Setting("OBCLIP_CLOUD_TOKEN", _text, "", "bearer token for the cloud(s) in OBCLIP_CLOUD_URL only", True),
    Setting("OBCLIP_CLOUD_BASIC", _text, "", "user:password for the cloud(s) in OBCLIP_CLOUD_URL only", True),
    Setting("OBCLIP_CLOUD_URL", _text, "", "the cloud URL(s) OBCLIP_CLOUD_TOKEN / OBCLIP_CLOUD_BASIC are for"),
    Setting("OBCLIP_CLOUD_ALLOW_HTTP", _flag, False,
            "send credentials over plain http to a non-loopback host (1); default: https only"),
    Setting("OBCLIP_CLOUD_CA_FILE", _text, "", "PEM bundle to trust for https/wss clouds"),
    Setting("OBCLIP_SECRETS_FILE", _text, "", "per-server secrets file (default ~/.config/obclip/secrets.json)"),
    Setting("OBCLIP_CLOUD_RETRIES", _count, 2,
            "times a run lost with its cloud worker (dropped connection, balancer 502/503/504) is retried"),
    Setting("OBCLIP_STOCK_FALLBACK", _flag, True, "use stock nodes on a cloud without the pack (1) or fail (0)"),
    Setting("OBCLIP_STOCK_FAMILY", _family, "SD15", "the cloud model's family in stock mode: SD15 or SDXL"),
    Setting("OBCLIP_PROBE_FROM_ANY_HOST", _flag, False, "let non-loopback browsers use the connection probe"),
    Setting("OBCLIP_LEXICON_DIR", _text, "", "folder of extra JSON lexicons the browser preview may name"),
    Setting("OBCLIP_BLOCKS", _flag, True, "more candidates than max_candidates: send the balanced anonymity block "
            "that holds yours (1) or refuse the prompt (0)"),
    Setting("OBCLIP_BLOCK_MAX_COMBINATIONS", _positive_int, 4096,
            "largest full candidate set that anonymity blocks are cut from (all of it is rendered to cut it)"),
    # cloud (server) side
    Setting("OBCLIP_SERVER_TOKEN", _text, "", "bearer token every request to this cloud must carry", True),
    Setting("OBCLIP_SERVER_TOKEN_FILE", _text, "", "file holding the server token"),
    Setting("OBCLIP_SERVER_TENANTS_FILE", _text, "",
            'JSON file {"operator": token, "clients": {name: token}}: several tenants on one cloud'),
    Setting("OBCLIP_SERVER_MAX_CANDIDATES", _positive_int, 256, "most candidates one request may carry"),
    Setting("OBCLIP_SERVER_MAX_STEPS", _positive_int, 150, "most denoising steps (T) one request may ask for"),
    Setting("OBCLIP_SERVER_MAX_PIXELS", _positive_int, 1024 * 1024, "largest width*height one request may ask for"),
    Setting("OBCLIP_SERVER_MAX_PROMPT_CHARS", _positive_int, 2000,
            "longest candidate or negative prompt, in characters"),
    Setting("OBCLIP_SERVER_MAX_BODY_KB", _positive_int, 4096, "largest JSON request body, KiB"),
    Setting("OBCLIP_SERVER_RESULT_TTL_S", _positive_float, 600.0, "seconds an unfetched result is kept"),
    Setting("OBCLIP_SERVER_RESULT_MAX_MB", _positive_float, 2048.0, "memory the result store may hold, MiB"),
    Setting("OBCLIP_SERVER_RESULT_TENANT_MB", _positive_float, 512.0,
            "share of the result store one client tenant's unfetched results may hold, MiB"),
    Setting("OBCLIP_SERVER_MAX_QUEUED_PER_TENANT", _positive_int, 32,
            "most requests one client tenant may have queued or running at once (more: HTTP 429)"),
    Setting("OBCLIP_SERVER_MAX_IDS_PER_TENANT", _positive_int, 100_000,
            "prompt ids and client ids remembered per tenant (its oldest are forgotten first)"),
    Setting("OBCLIP_SERVER_MAX_REJECTS_PER_MIN", _positive_int, 120,
            "refused requests one client tenant may send per minute before every POST gets HTTP 429"),
    # lab
    Setting("OBCLIP_MINIWORLD", _flag, False, "register the demo's mini-world model family and checkpoints"),
)}


@dataclass(frozen=True)
class Settings:
    values: dict = field(default_factory=dict)
    problems: dict = field(default_factory=dict)   # name -> message, for values that did not parse
    given: frozenset = frozenset()                 # names set in the environment (not defaulted)

    def __getattr__(self, name: str):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def require(self, *names: str) -> "Settings":
        """Raise the first problem among `names` (the settings a feature is about to use)."""
        for n in names:
            if n in self.problems:
                raise ConfigError(self.problems[n])
        return self

    def env_name(self, name: str) -> str:
        return SETTINGS[name].env

    def server_token(self) -> str | None:
        """OBCLIP_SERVER_TOKEN, else the content of OBCLIP_SERVER_TOKEN_FILE; None when neither is set."""
        if self.values["server_token"]:
            return self.values["server_token"]
        path = self.values["server_token_file"]
        if not path:
            return None
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as e:
            raise ConfigError(f"OBCLIP_SERVER_TOKEN_FILE={path} cannot be read ({e.strerror}); "
                              "point it at a file holding the token") from None
        if not token:
            raise ConfigError(f"OBCLIP_SERVER_TOKEN_FILE={path} is empty; put the token in it")
        return token


    def server_tenants(self) -> dict:
        """token -> (role, name) for every credential the cloud accepts; {} when auth is off.

        Roles: "operator" (everything ComfyUI serves) and "client" (the ObCLIP request routes, its own
        prompts only). OBCLIP_SERVER_TOKEN(_FILE) is the operator token; OBCLIP_SERVER_TENANTS_FILE adds
        client tokens (and may hold the operator token instead)."""
        out: dict = {}
        operator = self.server_token()
        path = self.values["server_tenants_file"]
        if path:
            env = "OBCLIP_SERVER_TENANTS_FILE"
            try:
                data = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
            except OSError as e:
                raise ConfigError(f"{env}={path} cannot be read ({e.strerror}); point it at the tenants file") \
                    from None
            except ValueError as e:
                raise ConfigError(f"{env}={path} is not valid JSON ({e}); write "
                                  '{"operator": "<token>", "clients": {"<name>": "<token>"}}') from None
            clients = data.get("clients") if isinstance(data, dict) else None
            if not isinstance(clients, dict) or not clients:
                raise ConfigError(f'{env}={path} needs a "clients" object of name -> token')
            if data.get("operator"):
                if operator:
                    raise ConfigError(f"{env}={path} has an operator token and OBCLIP_SERVER_TOKEN(_FILE) is "
                                      "set too; keep one")
                operator = data["operator"]
            for name, token in clients.items():
                if name in ("operator", "anonymous") or not str(name).strip():
                    raise ConfigError(f"{env}: {name!r} is not a usable client name; pick another")
                if not isinstance(token, str) or len(token.strip()) < 16:
                    raise ConfigError(f"{env}: the token of client {name!r} must be text of 16 characters or "
                                      "more (e.g. openssl rand -hex 32)")
                if token.strip() in out or token.strip() == operator:
                    raise ConfigError(f"{env}: client {name!r} shares its token with another tenant; give "
                                      "every tenant its own")
                out[token.strip()] = ("client", str(name))
        if operator:
            if not isinstance(operator, str) or not operator.strip():
                raise ConfigError("the operator token must be non-empty text")
            out[operator.strip()] = ("operator", "operator")
        return out


def settings(environ=None) -> Settings:
    """Read every OBCLIP_* variable now (cheap; call it where the value is used, not at import)."""
    env = os.environ if environ is None else environ
    values, problems = {}, {}
    for name, s in SETTINGS.items():
        raw = env.get(s.env)
        if raw is None:
            values[name] = s.default
            continue
        try:
            values[name] = s.parse(raw)
        except ValueError as e:
            values[name] = s.default
            shown = "(hidden)" if s.secret else repr(raw)
            problems[name] = f"{s.env}={shown} is not valid: {e} ({s.doc})"
    given = frozenset(name for name, s in SETTINGS.items() if s.env in env)
    return Settings(values, problems, given)


def unknown_variables(environ=None) -> list[str]:
    """OBCLIP_* variables the pack does not read: usually a typo, reported in the log at load."""
    env = os.environ if environ is None else environ
    known = {s.env for s in SETTINGS.values()}
    return sorted(k for k in env if k.startswith(PREFIX) and k not in known)


def describe() -> list[dict]:
    """The documented list, for the README and the tests."""
    return [{"env": s.env, "default": s.default, "doc": s.doc} for s in SETTINGS.values()]
