"""How an agent child finds its class: the one the daemon names in ``$OMHA_AGENT_CLASSES``, without loading every
plugin, else through the plugins; both read the same ``[agents.NAME]`` options and fail alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omha_core.agent import CLASSES_ENV, classes_env
from omha_core.plugins import get_plugin_manager

PROBE = (
    "import sys\n"
    "from omha_core.agent import build_agent\n"
    "agent = build_agent('file', sys.argv[1])\n"
    "print(type(agent).__name__, 'omha_core.plugins' in sys.modules, 'omha_resource_mount' in sys.modules)\n"
)


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("OMHA_CONFIG", CLASSES_ENV)}
    return {**base, **extra}


def test_the_daemon_names_every_installed_agent_class() -> None:
    words = classes_env(get_plugin_manager()).split()
    assert "file=omha_core.builtin.file_agent:FileAgent" in words
    assert "vip=omha_resource_vip.agent:VipAgent" in words
    assert "mount=omha_resource_mount.agent:MountAgent" in words


def test_a_named_class_is_used_without_loading_the_plugins(tmp_path: Path) -> None:
    named = env(**{CLASSES_ENV: classes_env(get_plugin_manager())})
    fast = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "m")], env=named, capture_output=True, text=True)
    assert fast.stdout.split() == ["FileAgent", "False", "False"], fast.stderr
    slow = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "m")], env=env(), capture_output=True, text=True)
    assert slow.stdout.split() == ["FileAgent", "True", "True"], slow.stderr


def test_both_ways_read_the_agent_options_and_refuse_bad_ones_alike(tmp_path: Path) -> None:
    config = tmp_path / "omha.toml"
    config.write_text('node = "n1"\n[agents.vip]\nprobe_timeout = -1\n')
    cmd = [sys.executable, "-m", "omha_core.agent", "vip", "check", "192.0.2.10/24"]
    named = env(OMHA_CONFIG=str(config), **{CLASSES_ENV: "vip=omha_resource_vip.agent:VipAgent"})
    fast = subprocess.run(cmd, env=named, capture_output=True, text=True, timeout=60)
    slow = subprocess.run(cmd, env=env(OMHA_CONFIG=str(config)), capture_output=True, text=True, timeout=60)
    assert fast.returncode == slow.returncode == 2
    assert "probe_timeout" in fast.stderr, fast.stderr
    assert "probe_timeout" in slow.stderr, slow.stderr


def test_a_class_the_daemon_did_not_name_is_found_through_the_plugins(tmp_path: Path) -> None:
    named = env(**{CLASSES_ENV: "vip=omha_resource_vip.agent:VipAgent"})
    run = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "m")], env=named, capture_output=True, text=True)
    assert run.stdout.split() == ["FileAgent", "True", "True"], run.stderr
