"""The one configuration module: every OBCLIP_* setting parsed once, a bad value reported with its fix
and never raised where the setting is not used."""
import pytest

from obclip_nodes import config


def test_defaults_when_nothing_is_set():
    cfg = config.settings({})
    assert cfg.problems == {}
    assert cfg.stock_fallback is True and cfg.stock_family == "SD15"
    assert cfg.miniworld is False  # the demo's model family is opt-in
    assert cfg.server_max_candidates == 256 and cfg.server_result_ttl_s == 600.0
    assert cfg.server_token() is None


def test_values_are_parsed():
    cfg = config.settings({"OBCLIP_MINIWORLD": "yes", "OBCLIP_STOCK_FAMILY": "sdxl",
                           "OBCLIP_SERVER_MAX_CANDIDATES": "30", "OBCLIP_STOCK_FALLBACK": "off"})
    assert (cfg.miniworld, cfg.stock_family, cfg.server_max_candidates, cfg.stock_fallback) == (True, "SDXL", 30, False)


@pytest.mark.parametrize("env,value,needle", [
    ("OBCLIP_SERVER_MAX_CANDIDATES", "lots", "whole number"),
    ("OBCLIP_SERVER_MAX_CANDIDATES", "0", "above 0"),
    ("OBCLIP_SERVER_RESULT_TTL_S", "nan", "above 0"),
    ("OBCLIP_STOCK_FAMILY", "SD3", "SD15 or SDXL"),
    ("OBCLIP_MINIWORLD", "maybe", "1 or 0"),
])
def test_a_bad_value_is_kept_as_a_problem_and_raised_only_where_used(env, value, needle):
    cfg = config.settings({env: value})
    name = env[len("OBCLIP_"):].lower()
    assert env in cfg.problems[name] and needle in cfg.problems[name]
    assert getattr(cfg, name) == config.SETTINGS[name].default   # the rest of the pack keeps working
    with pytest.raises(config.ConfigError, match=env):
        cfg.require(name)
    cfg.require("cloud_token")  # an unrelated feature is not stopped


def test_a_secret_never_appears_in_a_message(tmp_path):
    cfg = config.settings({"OBCLIP_SERVER_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(config.ConfigError) as e:
        cfg.server_token()
    assert "OBCLIP_SERVER_TOKEN_FILE" in str(e.value)
    (tmp_path / "tok").write_text("s3cr3t-value\n")
    assert config.settings({"OBCLIP_SERVER_TOKEN_FILE": str(tmp_path / "tok")}).server_token() == "s3cr3t-value"
    assert config.settings({"OBCLIP_SERVER_TOKEN": "abc", "OBCLIP_SERVER_TOKEN_FILE": "x"}).server_token() == "abc"


def test_unknown_variables_are_reported():
    assert config.unknown_variables({"OBCLIP_CLOUD_TOKN": "x", "OBCLIP_CLOUD_TOKEN": "y", "PATH": "/"}) == [
        "OBCLIP_CLOUD_TOKN"]


def test_no_module_reads_obclip_variables_itself():
    """Only config.py reads the environment for OBCLIP_* settings."""
    import re
    from pathlib import Path
    root = Path(config.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "config.py" or "bench" in path.parts or "harness" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"os\.environ(\.get)?\s*[\[(]\s*[\"']OBCLIP_|getenv\(\s*[\"']OBCLIP_", text):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []
