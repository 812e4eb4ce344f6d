"""Reading the workloads' configuration from the environment.

Environment variables are the one configuration channel that Kubernetes, the local
emulator and a developer's shell all share. A bad value stops the program with exit code
2 and a message naming the variable, because a pod that runs with a half-understood
configuration produces mesh failures that are much harder to trace than a crash loop.
"""

from __future__ import annotations

import os


class ConfigError(Exception):
    """An environment variable holds a value the program cannot use."""


class Secret:
    """A credential that can be used but not printed.

    ``str()``/``repr()`` are redacted, so an f-string or a traceback that happens to include
    the object cannot leak the value into pod logs; only :meth:`reveal` returns it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the value, for the one place that must send it (an Enroll request)."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('<redacted>')" if self._value else "Secret('')"

    __str__ = __repr__


def text(name: str, default: str) -> str:
    """Return the variable, or ``default`` when it is unset or empty."""
    value = os.environ.get(name, "")
    return value if value else default


def secret(name: str) -> Secret:
    """Return the variable as a :class:`Secret` (empty when unset)."""
    return Secret(os.environ.get(name, ""))


def port(name: str, default: int) -> int:
    """Return a TCP port; 0 is allowed so tests can ask the kernel for a free port."""
    raw = text(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}={value} is outside 0..65535")
    return value


def seconds(name: str, default: float) -> float:
    """Return a positive duration in seconds."""
    raw = text(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def address(name: str, default: str) -> str:
    """Return a ``host:port`` address (``[v6]:port`` allowed), checked for shape only."""
    value = text(name, default)
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"{name}={value!r} is not host:port")
    return value


def bind_address() -> str:
    """Return ``BIND_ADDRESS``: all interfaces on a cluster, one loopback address locally."""
    return text("BIND_ADDRESS", "0.0.0.0")


def join_host_port(host: str, port_number: int) -> str:
    """Format an address for gRPC and for logs, bracketing IPv6 hosts."""
    return f"[{host}]:{port_number}" if ":" in host else f"{host}:{port_number}"
