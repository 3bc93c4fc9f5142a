"""Helpers of the power-strip tests that test modules import (a conftest is not importable by name when every
plugin's tests run in one session)."""

from __future__ import annotations

import shutil

import pytest


def fence_apc_snmp_path() -> str:
    """The ClusterLabs agent (Debian package fence-agents), or skip."""
    path = shutil.which("fence_apc_snmp") or shutil.which("fence_apc_snmp", path="/usr/sbin:/sbin")
    if path is None or shutil.which("snmpget") is None:
        pytest.skip("needs fence_apc_snmp and snmpget (Debian packages fence-agents, snmp; 'make test' installs them)")
    return path

