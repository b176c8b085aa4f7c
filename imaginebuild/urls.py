"""Which hosts count as this machine: plain http is only ever allowed to them."""

from __future__ import annotations


def is_loopback_host(host: str) -> bool:
    """Whether `host` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    import ipaddress  # only plain-http URLs get here; start-up does not pay for it

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
