"""Who may reach the demo: loopback is free, anything wider needs credentials."""

from __future__ import annotations

import ipaddress
import socket

import psutil

from model.errors import UsageError


class ExposureRefused(UsageError):
    """Serving beyond localhost without credentials."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def only_this_machine(host: str, share: bool) -> bool:
    """Whether only this machine can open the demo (bound to loopback, no share link): then
    whoever reads the page is its owner, who ran `kit demo`, and may see the service's URL."""
    return not share and is_loopback(host)


def require_auth_if_exposed(host: str, share: bool, auth: tuple[str, str] | None) -> None:
    """Refuse to serve beyond localhost (a LAN address, 0.0.0.0, a share link) without auth."""
    if auth is None and (share or not is_loopback(host)):
        where = "a public share link" if share else f"{host} (reachable from other machines)"
        raise ExposureRefused(
            f"refusing to serve the demo on {where} without credentials: "
            "add --auth USER:PASS (or set KIT_AUTH=USER:PASS), or serve on 127.0.0.1"
        )


def lan_urls(port: int, host: str = "0.0.0.0") -> list[str]:  # noqa: S104
    """URLs at which other machines can reach a server bound to `host` (no traffic is sent)."""
    if host not in ("0.0.0.0", "::"):  # noqa: S104
        return [f"http://{host}:{port}/"]
    urls = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if (
                address.family == socket.AF_INET
                and not ipaddress.ip_address(address.address).is_loopback
            ):
                urls.append(f"http://{address.address}:{port}/")
    return sorted(urls) or [f"http://127.0.0.1:{port}/ (no network interface besides loopback)"]
