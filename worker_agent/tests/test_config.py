"""Agent settings from INVENTIV_* variables and flags."""

import pytest

from worker_agent.config import ConfigError, load_config
from worker_agent.engine_command import engine_command, engine_environment, printable

BASE = {
    "INVENTIV_CONTROL_PLANE_URL": "https://cp.example/",
    "INVENTIV_INSTANCE_ID": "inst-1",
    "INVENTIV_WORKER_TOKEN": "wt-abc",
    "INVENTIV_MODEL": "Qwen/Qwen2.5-7B-Instruct",
}


def test_it_reads_the_environment_with_documented_defaults():
    config = load_config([], BASE)
    assert config.control_plane_url == "https://cp.example"
    assert config.served_model_name == "Qwen/Qwen2.5-7B-Instruct"
    assert (config.engine_port, config.agent_port, config.agent_host) == (8000, 8081, "0.0.0.0")
    assert (config.engine_mode, config.heartbeat_interval_s) == ("vllm", 5.0)


def test_its_flags_override_the_environment():
    config = load_config(["--engine-mode", "attach", "--agent-port", "9100", "--served-model-name", "qwen"], BASE)
    assert (config.engine_mode, config.agent_port, config.served_model_name) == ("attach", 9100, "qwen")


def test_it_fails_loudly_on_missing_or_unreadable_settings():
    with pytest.raises(ConfigError, match="INVENTIV_WORKER_TOKEN"):
        load_config([], {k: v for k, v in BASE.items() if k != "INVENTIV_WORKER_TOKEN"})
    with pytest.raises(ConfigError, match="INVENTIV_ENGINE_MODE"):
        load_config([], {**BASE, "INVENTIV_ENGINE_MODE": "docker"})
    with pytest.raises(ConfigError, match="INVENTIV_HEARTBEAT_INTERVAL_S"):
        load_config([], {**BASE, "INVENTIV_HEARTBEAT_INTERVAL_S": "0"})
    with pytest.raises(ConfigError, match="INVENTIV_AGENT_PORT"):
        load_config([], {**BASE, "INVENTIV_AGENT_PORT": "70000"})


def test_it_keeps_secrets_out_of_its_repr_and_printed_commands():
    env = {**BASE, "INVENTIV_ENGINE_API_KEY": "ek-123", "INVENTIV_ENGINE_ARGS": "--max-model-len 8192"}
    config = load_config([], env)
    assert "wt-abc" not in repr(config) and "ek-123" not in repr(config)
    argv = engine_command(config)
    assert argv[:3] == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct"] and argv[-2:] == ["--max-model-len", "8192"]
    assert "ek-123" not in argv  # vLLM reads it from VLLM_API_KEY, out of `ps`'s sight
    assert engine_environment(config)["VLLM_API_KEY"] == "ek-123"
    simulator = engine_command(load_config(["--engine-mode", "simulator"], env))
    assert "ek-123" in simulator and "ek-123" not in printable(simulator)


def test_it_starts_no_engine_in_attach_mode():
    assert engine_command(load_config(["--engine-mode", "attach"], BASE)) is None


# --- A host the operator runs: a join token instead of an identity ------------------------------------

JOINING = {"INVENTIV_CONTROL_PLANE_URL": "https://cp.example", "INVENTIV_JOIN_TOKEN": "inv-join-secret",
           "INVENTIV_MODEL": "mock-echo", "INVENTIV_ENGINE_API_KEY": "ek-operator-123"}


def test_a_join_token_stands_for_the_instance_id_and_the_worker_token():
    config = load_config(["--engine-mode", "attach", "--engine-port", "8001"], JOINING)

    assert config.needs_join and (config.instance_id, config.worker_token) == ("", "")
    assert config.state_dir == "/var/lib/inventiv-agent"
    assert "inv-join-secret" in config.secrets and "inv-join-secret" not in repr(config)
    joined = config.with_identity("inst-9", "wt-9")
    assert not joined.needs_join and (joined.instance_id, joined.worker_token) == ("inst-9", "wt-9")
    assert load_config([], {**JOINING, "INVENTIV_AGENT_STATE_DIR": "/srv/agent"}).state_dir == "/srv/agent"


def test_a_join_needs_the_engine_key_and_an_agent_without_any_identity_is_told_about_join_tokens():
    with pytest.raises(ConfigError, match="INVENTIV_ENGINE_API_KEY"):
        load_config([], {k: v for k, v in JOINING.items() if k != "INVENTIV_ENGINE_API_KEY"})
    with pytest.raises(ConfigError, match="INVENTIV_INSTANCE_ID, INVENTIV_WORKER_TOKEN .*INVENTIV_JOIN_TOKEN"):
        load_config([], {k: v for k, v in JOINING.items() if k != "INVENTIV_JOIN_TOKEN"})


def test_an_agent_given_its_identity_does_not_join_even_with_a_join_token():
    assert not load_config([], {**BASE, "INVENTIV_JOIN_TOKEN": "inv-join-secret"}).needs_join
