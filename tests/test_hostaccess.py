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


# ---------------------------------------------------------------------------------------------------- issue 15, F4


def test_a_ptr_name_that_spells_an_address_is_never_trusted():
    """HostnameLookups On: mod_wsgi passes the client's PTR name as `host`; whoever runs the reverse zone of
    127.0.0.1's network can make it say "10.1.2.3". The rules see REMOTE_ADDR only, as `Require ip` does."""
    lookups_on = {"REMOTE_ADDR": "127.0.0.1"}
    admit_10 = allow_access(allow=["10.0.0.0/8"], default=False)
    assert admit_10(lookups_on, "10.1.2.3") is False
    assert admit_10({"REMOTE_ADDR": "10.1.2.3"}, "attacker.example") is True
    b = Backend(access=HostRules(allow=["10.0.0.0/8"], default=False))
    assert b.allow_access(lookups_on, "10.1.2.3") is False
    # and a deny rule cannot be dodged by a PTR name outside it
    refuse_local = Backend(access=HostRules(deny=["127.0.0.0/8"]))
    assert refuse_local.allow_access(lookups_on, "10.1.2.3") is False
    assert allow_access(deny=["127.0.0.0/8"])(lookups_on, "192.0.2.1") is False


@pytest.mark.parametrize("environ", [{}, {"REMOTE_ADDR": ""}, {"REMOTE_ADDR": "  "}])
def test_no_client_address_fails_closed_where_rules_exist(environ):
    """gunicorn on a Unix socket sets REMOTE_ADDR to '': a host rule must refuse, not skip, whatever `host` says."""
    assert allow_access(deny=["10.9.0.0/16"])(environ, "10.1.2.3") is False
    assert allow_access(allow=["all"])(environ, "127.0.0.1") is False
    assert Backend(access=HostRules(deny=["10.9.0.0/16"])).allow_access(environ, "127.0.0.1") is False
    assert Backend(access=lambda host: None).allow_access(environ, "127.0.0.1") is False  # any access callable
    assert Backend().allow_access(environ, "127.0.0.1") is None  # no rules: no decision, as before


@pytest.mark.parametrize(("rule", "ipv4"), [
    ("::ffff:10.9.0.0/112", "10.9.0.0/16"),
    ("::ffff:10.9.0.5", "10.9.0.5"),
    ("::FFFF:a09:0/120", "10.9.0.0/24"),
    ("0:0:0:0:0:ffff:10.9.0.0/104", "10.0.0.0/8"),
    ("::ffff:0:0/96", "0.0.0.0/0"),
])
def test_ipv4_mapped_rules_are_refused_naming_their_ipv4_form(rule, ipv4):
    """Apache refuses `Require ip ::ffff:10.9.0.0/112` ("The specified IP address is invalid"): such a rule never
    matches (mapped clients are matched as IPv4), so a deny written that way let ::ffff:10.9.0.5 and 10.9.0.5 in."""
    with pytest.raises(ConfigError, match=f"IPv4-mapped.*write it as IPv4 \\({ipv4}\\)"):
        parse_rule(rule)
    with pytest.raises(ConfigError):
        HostRules(deny=[rule])
    # the IPv4 form denies the client under both spellings
    rules = HostRules(deny=[ipv4], allow=["all"])
    assert rules("10.9.0.5") is False and rules("::ffff:10.9.0.5") is False
    assert allow_access(deny=[ipv4], allow=["all"])({"REMOTE_ADDR": "::ffff:10.9.0.5"}, "x") is False


def test_ipv4_mapped_rules_are_a_configuration_error(tmp_path):
    from wsgiauth import load

    (tmp_path / "users").write_text("")
    (tmp_path / "site.toml").write_text('[backends.f]\ntype = "htpasswd"\nusers = "users"\n'
                                        '[access]\ndeny = ["10.8.0.0/16", "::ffff:10.9.0.0/112"]\n')
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "site.toml")
    assert any(e.startswith("access.deny[1]: host rule '::ffff:10.9.0.0/112' is an IPv4-mapped IPv6 address")
               and "(10.9.0.0/16)" in e for e in info.value.errors), info.value  # type: ignore[attr-defined]


def test_other_ipv6_rules_still_work():
    rules = HostRules(allow=["2001:db8::/32", "::1", "fe80::/10"], default=False)
    assert rules("2001:db8::5") and rules("::1") and rules("fe80::1%eth0")
    assert rules("::ffff:7f00:1") is False  # a mapped 127.0.0.1 is an IPv4 client: no IPv4 rule here
