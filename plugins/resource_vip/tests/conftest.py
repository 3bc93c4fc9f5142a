"""Fixtures for the ``@vip`` tests: a fresh network segment of namespaces per test, always removed."""

from omha_testing.lan import lan

__all__ = ["lan"]
