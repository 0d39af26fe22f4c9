"""Settings (SPEC §7): WEBHOOK_LISTEN as HOST:PORT, an IPv6 host in brackets."""

from __future__ import annotations

import pytest

from settings import SettingsError, load_settings


@pytest.mark.parametrize(
    ("listen", "bound"),
    [("0.0.0.0:8443", ("0.0.0.0", 8443)), ("[::]:8443", ("::", 8443)), ("[::1]:80", ("::1", 80))],
)
def test_webhook_listen_is_bound_as_its_host_and_port_an_ipv6_host_without_brackets(
    listen: str, bound: tuple[str, int]
) -> None:
    assert load_settings(WEBHOOK_LISTEN=listen).webhook_listen == bound


@pytest.mark.parametrize("listen", ["8443", "[]:8443", ":8443", "0.0.0.0:http", "0.0.0.0:70000"])
def test_a_webhook_listen_without_a_host_or_a_port_is_a_bad_setting(listen: str) -> None:
    with pytest.raises(SettingsError, match="bad setting WEBHOOK_LISTEN: must be HOST:PORT"):
        load_settings(WEBHOOK_LISTEN=listen)
