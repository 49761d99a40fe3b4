"""allow_access rules with mod_authz_host's `Require ip` semantics."""

from __future__ import annotations

import pytest

from wsgiauth.adapter import Backend
from wsgiauth.exceptions import ConfigError
from wsgiauth.hostaccess import HostRules, allow_access, parse_rule


@pytest.mark.parametrize(
    ("rule", "inside", "outside"),
    [
        ("10.1.2.3", "10.1.2.3", "10.1.2.4"),
        ("10", "10.200.1.1", "11.0.0.1"),
        ("172.20", "172.20.9.9", "172.21.0.1"),
        ("192.168.2", "192.168.2.77", "192.168.20.1"),
        ("10.1.0.0/16", "10.1.255.1", "10.2.0.1"),
        ("10.1.0.0/255.255.0.0", "10.1.3.4", "10.3.1.1"),
        ("2001:db8::a00:20ff:fea7:ccea", "2001:db8::a00:20ff:fea7:ccea", "2001:db8::1"),
        ("2001:db8:1:1::/64", "2001:db8:1:1::99", "2001:db8:1:2::1"),
        ("local", "127.0.0.1", "10.0.0.1"),
        ("local", "::1", "::2"),
        ("10.0.0.0/8", "::ffff:10.9.8.7", "::ffff:11.0.0.1"),  # IPv4-mapped IPv6 clients match IPv4 rules
    ],
)
def test_rule_forms(rule, inside, outside):
    rules = HostRules(allow=[rule], default=False)
    assert rules(inside) is True
    assert rules(outside) is False


def test_deny_wins_over_allow_and_default_applies():
    rules = HostRules(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"])
    assert rules("10.1.1.1") is True
    assert rules("10.9.1.1") is False
    assert rules("192.0.2.1") is None


def test_space_separated_rules_like_require_ip():
    rules = HostRules(allow="10 172.20 192.168.2", default=False)
    assert rules("172.20.1.1") and rules("192.168.2.1") and not rules("172.21.1.1")


@pytest.mark.parametrize("bad", ["", "10.1.2.300", "300", "example.org", "10.0.0.0/33", "1.2.3.4/255.0.255.0"])
def test_bad_rules_say_what_is_wrong(bad):
    with pytest.raises(ConfigError):
        parse_rule(bad)


def test_host_name_falls_back_to_remote_addr_and_garbage_is_refused():
    aa = allow_access(allow=["local"], default=False)
    assert aa({"REMOTE_ADDR": "127.0.0.1"}, "localhost.example") is True
    assert aa({}, "not an address") is False
    b = Backend(access=HostRules(deny=["127.0.0.0/8"]))
    assert b.allow_access({"REMOTE_ADDR": "127.0.0.1"}, "127.0.0.1") is False
    assert b.allow_access({"REMOTE_ADDR": "10.0.0.1"}, "10.0.0.1") is None
