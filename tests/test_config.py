"""The TOML configuration: every key, every error message (all reported at once, with key paths), secrets from
files and environment variables, and the hooks a loaded file gives."""

from __future__ import annotations

import importlib
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends._common import SQL_SCHEMA, missing, require_tool
from wsgiauth import ConfigError, config, load
from wsgiauth._options import POOL_OPTIONS
from wsgiauth.compose import Canonical, Chain


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """htpasswd/htgroup/htdigest files written by Apache's own tools."""
    d = tmp_path_factory.mktemp("store")
    htpasswd = require_tool("htpasswd")
    subprocess.run([htpasswd, "-cbB", "-C", "4", str(d / "users"), "alice", "wonder"], check=True,
                   capture_output=True)
    subprocess.run([htpasswd, "-bm", str(d / "users"), "Bob", "builder"], check=True, capture_output=True)
    subprocess.run([htpasswd, "-cbm", str(d / "more"), "carol", "singer"], check=True, capture_output=True)
    (d / "groups").write_text("staff: alice\nadmins: alice Bob\n")
    (d / "digest").write_text("alice:Staff:" + __import__("hashlib").md5(b"alice:Staff:wonder").hexdigest() + "\n")
    (d / "ldap-pw").write_text("s3cret\n")
    return d


def write(d: Path, text: str, name: str = "site.toml") -> Path:
    p = d / name
    p.write_text(textwrap.dedent(text))
    return p


def errors_of(d: Path, text: str, **kw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(write(d, text, name=f"bad{abs(hash(text))}.toml"), **kw)  # type: ignore[arg-type]
    errs: list[str] = info.value.errors  # type: ignore[attr-defined]
    assert str(info.value).count("\n") == len(errs)  # one line per error after the heading
    return errs


def test_minimal_file_gives_working_hooks(store: Path) -> None:
    cfg = load(write(store, """
        realm = "Staff"
        [backends.files]
        type = "htpasswd"
        users = "users"          # relative to the config file
        groups = "groups"
        digest = "digest"
    """))
    check_password, get_realm_hash, groups_for_user, allow_access = cfg.hooks()
    assert check_password({}, "alice", "wonder") is True
    assert check_password({}, "alice", "nope") is False
    assert check_password({}, "nobody", "x") is None
    assert sorted(groups_for_user({}, "alice")) == ["admins", "staff"]
    assert get_realm_hash({}, "alice", "Staff") == __import__("hashlib").md5(b"alice:Staff:wonder").hexdigest()
    assert allow_access({}, "10.0.0.1") is None  # no [access] table: no decision
    assert cfg.realm == "Staff"
    assert cfg.backend.label == "files"


def test_same_file_same_objects(store: Path) -> None:
    text = '[backends.f]\ntype = "htpasswd"\nusers = "users"\n'
    p = write(store, text, "same.toml")
    first = load(p)
    assert load(str(p)) is first
    assert load(p).backend is first.backend
    p.write_text(text + 'log_level = "info"\n'.replace("log_level", "# changed\nlog_level"))
    assert load(p) is not first  # new content: new objects


def test_all_errors_at_once_with_key_paths(store: Path) -> None:
    errs = errors_of(store, """
        log_level = "loud"
        backend = "main"
        colour = 1
        [backends.corp]
        type = "ldap"
        url = "http://dir.example.org/"
        bind_dn = "cn=svc"
        timeout = -1
        [backends.files]
        type = "htpasswd"
        users = "missing-file"
        check_interval = "soon"
        userz = 1
        [backends.main]
        type = "chain"
        members = ["corp", "nowhere"]
    """)
    assert "log_level: must be one of 'debug', 'info', 'warning', 'error', 'off', not 'loud'" in errs
    assert "colour: unknown key" in errs
    assert "backends.corp.url: not an ldap:// or ldaps:// URL: 'http://dir.example.org/'" in errs
    assert any(e.startswith("backends.corp.bind_password: required with bind_dn") for e in errs)
    assert "backends.corp.timeout: must be greater than 0, not -1" in errs
    assert f"backends.files.users: {store / 'missing-file'} does not exist" in errs
    assert "backends.files.check_interval: expected a number, got a string" in errs
    assert "backends.files.userz: unknown key (did you mean 'users'?)" in errs
    assert "backends.main.members[1]: no backend named 'nowhere'" in errs
    assert len(errs) == 9


@pytest.mark.parametrize(("text", "expected"), [
    ("", "backends: no backend defined: add a [backends.NAME] table with a type"),
    ("backends = 3", "backends: expected a table, got an integer"),
    ("[backends.x]\nusers='users'", "backends.x.type: must be one of chain, dbm, htdigest, htgroup, htpasswd, ldap, "
                                    "sql (got missing)"),
    ("[backends.x]\ntype='nis'", "backends.x.type: must be one of chain, dbm, htdigest, htgroup, htpasswd, ldap, sql "
                                 "(got 'nis')"),
    ("[backends.x]\ntype='htpasswd'", "backends.x.users: required: htpasswd file (user:hash)"),
    ("[backends.x]\ntype='htpasswd'\nusers=''", "backends.x.users: must not be empty"),
    ("[backends.x]\ntype='htpasswd'\nusers=['a']", "backends.x.users: expected a non-empty string, got an array"),
    ("[backends.x]\ntype='htdigest'", "backends.x.digest: required: htdigest file (user:realm:HA1)"),
    ("[backends.x]\ntype='htgroup'", "backends.x.groups: required: htgroup file (group: member member...)"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\ncheck_interval=-1",
     "backends.x.check_interval: must be at least 0, not -1"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\nallow_plaintext='yes'",
     "backends.x.allow_plaintext: expected true or false, got a string"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\non_error='explode'",
     "backends.x.on_error: must be one of 'unknown', 'deny', 'raise', not 'explode'"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\ncanonicalize={upper=true}",
     "backends.x.canonicalize.upper: unknown key"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\ncanonicalize=1", "backends.x.canonicalize: expected a table, "
                                                                     "got an integer"),
    ("[backends.x]\ntype='dbm'", "backends.x.path: required: DBM file, as given to AuthDBMUserFile"),
    ("[backends.x]\ntype='dbm'\npath='u.db'\ndbm_type='ndbm'",
     "backends.x.dbm_type: must be one of 'auto', 'db', 'gdbm', 'sdbm', 'default', not 'ndbm'"),
    ("[backends.x]\ntype='sql'\ndriver='oracle'\npreset='django'",
     "backends.x.driver: must be one of 'sqlite', 'postgresql', 'mysql', not 'oracle'"),
    ("[backends.x]\ntype='sql'\ndriver='sqlite'\npreset='django'",
     "backends.x.database: required for driver 'sqlite': the path of the database file"),
    ("[backends.x]\ntype='sql'\ndriver='sqlite'\ndatabase='nope.db'\npreset='django'",
     "backends.x.database: {store}/nope.db does not exist"),
    ("[backends.x]\ntype='sql'\ndriver='sqlite'\ndatabase='users'\nhost='h'\npreset='django'",
     "backends.x.host: not used with driver 'sqlite'"),
    ("[backends.x]\ntype='sql'\ndriver='postgresql'\npreset='django'",
     "backends.x.conninfo: required for driver 'postgresql' (or give host/database/user)"),
    ("[backends.x]\ntype='sql'\ndriver='mysql'\npreset='django'", "backends.x.database: required for driver 'mysql'"),
    ("[backends.x]\ntype='sql'\ndriver='mysql'\ndatabase='d'\nconninfo='c'\npreset='django'",
     "backends.x.conninfo: only for driver 'postgresql'; use host, port, user, database"),
    ("[backends.x]\ntype='sql'\ndriver='postgresql'\nconninfo='dbname=x'\npassword_query='select 1'",
     "backends.x.password_query: "),
    ("[backends.x]\ntype='sql'\ndriver='postgresql'\nconninfo='dbname=x'\ngroups_query='select g where u=:realm'",
     "backends.x.groups_query: "),
    ("[backends.x]\ntype='sql'\ndriver='sqlite'\ndatabase='users'\npreset='nosuch'",
     "backends.x.preset: must be one of 'wsgiauth', 'django', not 'nosuch'"),
    ("[backends.x]\ntype='sql'\ndriver='postgresql'\nconninfo='x'\npreset='django'\nport=70000",
     "backends.x.port: must be at most 65535, not 70000"),
    ("[backends.x]\ntype='sql'\ndriver='postgresql'\nconninfo='x'\npreset='django'\npool_size=1.5",
     "backends.x.pool_size: expected an integer, got a number"),
    ("[backends.x]\ntype='ldap'", "backends.x.url: required (or hosts): ldap[s]://host/basedn?attr?scope?filter"),
    ("[backends.x]\ntype='ldap'\nurl='ldap://'", "backends.x.url: not an ldap:// or ldaps:// URL: 'ldap://'"),
    ("[backends.x]\ntype='ldap'\nurl='ldaps://h/dc=x'\nstarttls=true",
     "backends.x.starttls: STARTTLS makes no sense on an ldaps:// URL"),
    ("[backends.x]\ntype='ldap'\nurl='ldap://h/dc=x'\nscope='tree'",
     "backends.x.scope: must be one of 'base', 'one', 'sub', not 'tree'"),
    ("[backends.x]\ntype='ldap'\nurl='ldap://h/dc=x'\nmax_depth=99", "backends.x.max_depth: must be at most 20, not 99"),
    ("[backends.x]\ntype='ldap'\nurl='ldap://h/dc=x'\ngroup_attributes=[1]",
     "backends.x.group_attributes: expected an array of non-empty strings"),
    ("[backends.x]\ntype='ldap'\nurl='ldap://h/dc=x'\nbind_dn='cn=a'\nbind_password='p'\nbind_password_env='E'",
     "backends.x.bind_password_env: give only one of bind_password, bind_password_env"),
    ("[backends.x]\ntype='chain'", "backends.x.members: required: names of the backends asked in order"),
    ("[backends.x]\ntype='chain'\nmembers=['x']", "backends.x.members[0]: a chain cannot contain itself"),
    ("[backends.a]\ntype='chain'\nmembers=['b']\n[backends.b]\ntype='chain'\nmembers=['a']\n",
     "backends.a.members: cycle: a -> b -> a"),
    ("backend='zz'\n[backends.x]\ntype='htpasswd'\nusers='users'",
     "backend: no backend named 'zz' (defined: x)"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[backends.y]\ntype='htpasswd'\nusers='users'",
     'backend: several backends are defined: say which one the hooks use (backend = "NAME", one of x, y)'),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[cache]\nttl=0", "cache.ttl: must be greater than 0, not 0"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[cache]\nredis=true\nkey='0123456789abcdef'",
     "redis: a cache or throttle asks for redis = true but there is no [redis] table"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[cache]\nredis=true\n[redis]\nurl='redis://127.0.0.1'",
     "cache.key: required with redis = true (the key shared by every process; give key_file or key_env)"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[redis]\nurl='http://x'",
     "redis.url: not a redis://, rediss:// or unix:// URL: 'http://x'"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[throttle]\nper='ip'",
     "throttle.per: must be one of 'user', 'address', 'both', not 'ip'"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[throttle]\nmax_failures=0",
     "throttle.max_failures: must be at least 1, not 0"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[access]\ndefault='deny'", "access: give allow and/or deny rules"),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[access]\nallow=['10.0.0.300']",
     "access.allow[0]: "),
    ("[backends.x]\ntype='htpasswd'\nusers='users'\n[access]\nallow=['local']\ndefault='maybe'",
     "access.default: must be one of 'allow', 'deny', 'none', not 'maybe'"),
])
def test_each_error_message(store: Path, text: str, expected: str) -> None:
    errs = errors_of(store, text)
    expected = expected.replace("{store}", str(store))
    assert any(e.startswith(expected) for e in errs), errs


def test_not_toml_and_unreadable(store: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[backends.x\n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load(bad)
    with pytest.raises(ConfigError, match=r"absent.toml: cannot read the configuration file: No such file"):
        load(tmp_path / "absent.toml")


LDAP = """
    [backends.corp]
    type = "ldap"
    url = "ldap://127.0.0.1:1/ou=people,dc=example,dc=org?uid"
    bind_dn = "cn=svc,dc=example,dc=org"
    {secret}
"""


def test_secret_from_file(store: Path) -> None:
    cfg = load(write(store, LDAP.format(secret='bind_password_file = "ldap-pw"'), "pwfile.toml"))
    assert cfg.backend._bind_password == "s3cret"  # type: ignore[attr-defined]  # trailing newline dropped
    assert cfg.settings["backends"]["corp"]["bind_password"] == "***"


def test_secret_from_environment(store: Path) -> None:
    cfg = load(write(store, LDAP.format(secret='bind_password_env = "CORP_PW"'), "pwenv.toml"),
               environ={"CORP_PW": "from-env"})
    assert cfg.backend._bind_password == "from-env"  # type: ignore[attr-defined]


def test_secret_inline_is_allowed(store: Path) -> None:
    cfg = load(write(store, LDAP.format(secret='bind_password = "inline"'), "pwinline.toml"))
    assert cfg.backend._bind_password == "inline"  # type: ignore[attr-defined]


def test_secret_errors(store: Path) -> None:
    (store / "empty-pw").write_text("\n")
    assert errors_of(store, LDAP.format(secret='bind_password_env = "NOT_SET_ANYWHERE"'), environ={}) == [
        "backends.corp.bind_password_env: environment variable NOT_SET_ANYWHERE is not set (for Apache's processes, "
        "export it in /etc/apache2/envvars)"]
    assert errors_of(store, LDAP.format(secret='bind_password_file = "no-such-file"')) == [
        f"backends.corp.bind_password_file: cannot read {store / 'no-such-file'}: No such file or directory"]
    assert errors_of(store, LDAP.format(secret='bind_password_file = "empty-pw"')) == [
        f"backends.corp.bind_password_file: {store / 'empty-pw'} is empty"]


def test_secret_file_unreadable_names_uid(store: Path) -> None:
    if os.geteuid() != 0:
        missing("needs root to run as www-data (CI runs as root)")
    tmp_path = Path(tempfile.mkdtemp(prefix="wsgiauth-cfg-", dir="/tmp"))  # pytest's tmp dirs are root-only
    secret = tmp_path / "root-only"
    secret.write_text("x")
    secret.chmod(0o600)
    tmp_path.chmod(0o755)
    conf = write(tmp_path, LDAP.format(secret=f'bind_password_file = "{secret}"'), "c.toml")
    conf.chmod(0o644)
    code = f"from wsgiauth import load\ntry:\n    load({str(conf)!r})\nexcept ValueError as e:\n    print(e)\n"
    try:
        out = subprocess.run(["runuser", "-u", "www-data", "--", sys.prefix + "/bin/python", "-c", code],
                             capture_output=True, text=True, cwd="/", timeout=60)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert f"bind_password_file: cannot read {secret}: permission denied for uid 33" in out.stdout, out.stderr


def test_chain_canonicalize_and_access(store: Path) -> None:
    cfg = load(write(store, """
        backend = "all"
        [backends.main]
        type = "htpasswd"
        users = "users"
        groups = "groups"
        canonicalize = { lower = true }
        [backends.more]
        type = "htpasswd"
        users = "more"
        label = "second file"
        [backends.all]
        type = "chain"
        members = ["main", "more"]
        [access]
        allow = ["127.0.0.0/8", "10.1.0.0/16"]
        deny = ["10.1.2.0/24"]
        default = "deny"
    """, "chain.toml"))
    check_password, _, groups_for_user, allow_access = cfg.hooks()
    assert isinstance(cfg.backend, Chain)
    assert isinstance(cfg.backends["main"], Canonical)
    assert check_password({}, "ALICE", "wonder") == "alice"  # canonical name reported to Apache
    assert check_password({}, "carol", "singer") is True  # unknown to the first file, known to the second
    assert check_password({}, "carol", "wrong") is False
    assert "staff" in groups_for_user({}, "alice")
    # the rules see REMOTE_ADDR (as mod_wsgi sets it), never the host argument (issue 15, F4)
    assert allow_access({"REMOTE_ADDR": "127.0.0.1"}, "127.0.0.1") is True
    assert allow_access({"REMOTE_ADDR": "10.1.2.3"}, "10.1.2.3") is False
    assert allow_access({"REMOTE_ADDR": "192.0.2.1"}, "192.0.2.1") is False
    assert allow_access({}, "127.0.0.1") is False  # no client address: refused
    assert cfg.backends["more"].label == "second file"


def test_single_root_is_chosen_without_backend_key(store: Path) -> None:
    cfg = load(write(store, """
        [backends.a]
        type = "htpasswd"
        users = "users"
        [backends.b]
        type = "htpasswd"
        users = "more"
        [backends.both]
        type = "chain"
        members = ["a", "b"]
    """, "roots.toml"))
    assert isinstance(cfg.backend, Chain)


def test_cache_and_throttle_wrap_the_top(store: Path) -> None:
    from wsgiauth.cache import Cached
    from wsgiauth.throttle import Throttled

    cfg = load(write(store, """
        log_level = "error"
        [backends.f]
        type = "htpasswd"
        users = "users"
        [cache]
        ttl = 60
        max_size = 100
        [throttle]
        max_failures = 3
        window = 60
        lockout = 30
        per = "user"
    """, "wrapped.toml"))
    assert isinstance(cfg.backend, Throttled)
    assert isinstance(cfg.backend.inner, Cached)
    check_password = cfg.hooks()[0]
    assert check_password({"REMOTE_ADDR": "127.0.0.1"}, "alice", "wonder") is True
    for _ in range(3):
        assert check_password({"REMOTE_ADDR": "127.0.0.1"}, "Bob", "bad") is False
    # locked out now: even the right password is refused
    assert check_password({"REMOTE_ADDR": "127.0.0.1"}, "Bob", "builder") in (False, None)


def test_disabled_cache_is_not_applied(store: Path) -> None:
    cfg = load(write(store, '[backends.f]\ntype="htpasswd"\nusers="users"\n[cache]\nenabled=false\n', "nocache.toml"))
    assert type(cfg.backend).__name__ == "Backend"


def test_global_log_level_and_on_error_reach_backends(store: Path) -> None:
    cfg = load(write(store, 'log_level="debug"\non_error="deny"\n[backends.f]\ntype="htpasswd"\nusers="users"\n',
                     "levels.toml"))
    assert cfg.backend.log_level == "debug"
    assert cfg.backend.on_error == "deny"


@pytest.mark.parametrize("kind", ["htpasswd", "dbm", "sql", "ldap"])
def test_schema_keys_are_constructor_arguments(kind: str) -> None:
    """Every key the config passes on is a keyword the backend really takes (the schema cannot drift)."""
    module = importlib.import_module(f"wsgiauth.backends.{kind}")
    ctor = module.Backend
    params = inspect.signature(ctor).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD and p.annotation == "Any" for p in params.values())
    pool_options = set(POOL_OPTIONS) if any(
        p.kind is p.VAR_KEYWORD and p.annotation == "Unpack[PoolOptions]" for p in params.values()) else set()
    keys = {**config._COMMON, **config.SCHEMA[kind]}
    for key, spec in keys.items():
        if spec.arg == "":
            continue
        arg = spec.arg or key
        assert arg in params or arg in pool_options or (takes_any and arg in ("label", "on_error", "log_level")), (
            kind, key)


def _around(option: Any) -> tuple[list[Any], list[Any]]:
    """Values at the edges of an option's range that it must accept, and just outside that it must refuse."""
    step = 1 if option.integer else 0.001
    accepted: list[Any] = [option.default]
    refused: list[Any] = ["5", True]
    if option.above is not None:
        accepted.append(option.above + step)
        refused.append(option.above)
    if option.low is not None:
        accepted.append(option.low)
        refused.append(option.low - step)
    if option.high is not None:
        accepted.append(option.high)
        refused.append(option.high + step)
    if option.integer:
        refused.append(float(option.default) + 0.5)
    return accepted, refused


def _numeric_keywords() -> Iterator[tuple[str, str, str, Any, Any]]:
    """(kind, key, keyword, the config's Option, a constructor taking that keyword) for every numeric backend key."""
    from wsgiauth.backends import ldap, sql

    def ldap_ctor(**kw: Any) -> Any:
        return ldap.Backend("ldap://127.0.0.1/dc=example,dc=org", **kw)

    def sql_ctor(**kw: Any) -> Any:
        return sql.Backend("sqlite:///drift.db", pool_key=("drift", tuple(kw.items())), **kw)

    drivers = {"sqlite": lambda **kw: sql.sqlite("drift.db", pool_key=("drift", tuple(kw.items())), **kw),
               "postgresql": sql.postgresql, "mysql": sql.mysql}
    from wsgiauth.adapter import Backend
    from wsgiauth.cache import Cached
    from wsgiauth.throttle import Throttled

    def throttle_ctor(**kw: Any) -> Any:
        return Throttled(Backend(), **({"lockout": 0.0005} if "max_lockout" in kw else {}), **kw)

    tables = (("ldap", config.SCHEMA["ldap"], ldap_ctor), ("sql", config.SCHEMA["sql"], sql_ctor),
              ("cache", config._CACHE, lambda **kw: Cached(Backend(), **kw)), ("throttle", config._THROTTLE,
                                                                                  throttle_ctor))
    for kind, table, ctor in tables:
        for key, spec in table.items():
            if spec.option is None:
                continue
            if spec.arg != "":
                yield kind, key, spec.arg or key, spec.option, ctor
                continue
            for driver, keywords in config._SQL_TIMEOUT_KEYS.items():
                if key in keywords:
                    yield f"sql/{driver}", key, keywords[key], spec.option, drivers[driver]


@pytest.mark.parametrize(("kind", "key", "keyword", "option", "ctor"), list(_numeric_keywords()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_schema_ranges_are_the_constructors(kind: str, key: str, keyword: str, option: Any, ctor: Any) -> None:
    """The config checks a numeric key with the very range its constructor enforces: every value the config accepts
    the constructor accepts, every value it refuses the constructor refuses with an error naming the keyword."""
    from wsgiauth._options import OptionError

    accepted, refused = _around(option)
    for value in accepted:
        assert option.problem(value) is None, (key, value)
        ctor(**{keyword: value}).close()
    for value in refused:
        assert option.problem(value) is not None, (key, value)
        with pytest.raises(OptionError) as info:
            ctor(**{keyword: value})
        assert info.value.option == keyword and info.value.reason == option.problem(value)


def test_schema_defaults_are_the_constructors() -> None:
    """Defaults: the config leaves unset keys to the constructors, whose defaults are the specs' (checked here
    against the signatures, and against the lower-level Pool's own defaults)."""
    from wsgiauth.backends import ldap, sql
    from wsgiauth.cache import Cached
    from wsgiauth.pool import Pool, pool_arguments
    from wsgiauth.throttle import Throttled

    seen = 0
    for kind, key, keyword, option, _ in _numeric_keywords():
        if keyword in POOL_OPTIONS:
            assert POOL_OPTIONS[keyword] is option
            continue
        fn = {"ldap": ldap.Backend, "sql/sqlite": sql.sqlite, "sql/postgresql": sql.postgresql,
              "sql/mysql": sql.mysql, "cache": Cached, "throttle": Throttled}[kind]
        assert inspect.signature(fn).parameters[keyword].default == option.default, (kind, key)
        seen += 1
    assert seen >= 14
    pool_defaults = {k: p.default for k, p in inspect.signature(Pool).parameters.items()}
    for arg, value in pool_arguments({}, what="test").items():
        assert pool_defaults[arg] == value, arg
    sq = sql.Backend("sqlite:///drift-defaults.db", pool_key=("drift-defaults",))
    assert (sq.pool.max_size, sq.pool.timeout, sq.pool.max_idle, sq.pool.check_after, sq.pool.breaker_reset) == (
        POOL_OPTIONS["pool_size"].default, POOL_OPTIONS["pool_timeout"].default, POOL_OPTIONS["max_idle"].default,
        POOL_OPTIONS["check_after"].default, POOL_OPTIONS["breaker_reset"].default)


@pytest.mark.parametrize(("text", "expected"), [
    ("[backends.x]\ntype='ldap'\nurl='ldap://h/dc=x'\nmax_depth=21", "backends.x.max_depth: must be at most 20, not 21"),
    ("[backends.x]\ntype='ldap'\nurl='ldap://h/dc=x'\ntimeout=0", "backends.x.timeout: must be greater than 0, not 0"),
    ("[backends.x]\ntype='sql'\ndriver='sqlite'\ndatabase='users'\npool_size=0",
     "backends.x.pool_size: must be at least 1, not 0"),
    ("[backends.x]\ntype='sql'\ndriver='postgresql'\nconninfo='x'\ntimeout=-1",
     "backends.x.timeout: must be greater than 0, not -1"),
])
def test_range_errors_name_the_key(store: Path, text: str, expected: str) -> None:
    assert expected in errors_of(store, text)


def test_constructor_errors_are_reported_at_their_key_path(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value the schema lets through but the constructor refuses is reported at its key, not at the table."""
    from wsgiauth import _options

    # As if the schema had drifted: it accepts any depth, the constructor still refuses more than 20.
    monkeypatch.setitem(config.SCHEMA["ldap"], "max_depth", config.Key(lambda v, p, c: v, "depth"))
    monkeypatch.setitem(config.SCHEMA["sql"], "timeout", config.Key(lambda v, p, c: v, "timeout", arg=""))
    errs = errors_of(store, """
        backend = "dir"
        [backends.dir]
        type = "ldap"
        url = "ldap://127.0.0.1/dc=example,dc=org"
        max_depth = 99
        [backends.db]
        type = "sql"
        driver = "postgresql"
        conninfo = "dbname=x"
        timeout = 0
        [cache]
        ttl = 60
    """)
    assert errs == [f"backends.dir.max_depth: {_options.LDAP_MAX_DEPTH.problem(99)}",
                    "backends.db.timeout: must be greater than 0, not 0"]


# ---------------------------------------------------------------------------------------------------- real servers
# Each backend type configured from TOML against the real server it talks to (the launchers in backends/).


def test_ldap_from_config(store: Path, slapd: Any) -> None:
    from backends import slapd as L

    (store / "svc-pw").write_text(L.SERVICE_PW + "\n")
    cfg = load(write(store, f"""
        [backends.corp]
        type = "ldap"
        url = "{slapd.url}/{L.PEOPLE}?uid?sub"
        bind_dn = "{L.SERVICE_DN}"
        bind_password_file = "svc-pw"
        group_base = "{L.GROUPS}"
        timeout = 5
        [backends.corp.canonicalize]
        lower = true
    """, "ldap.toml"))
    check_password, _, groups_for_user, _ = cfg.hooks()
    assert check_password({}, "alice", L.PASSWORDS["alice"]) is True
    assert check_password({}, "ALICE", L.PASSWORDS["alice"]) == "alice"
    assert check_password({}, "alice", "wrong") is False
    assert check_password({}, "nobody", "x") is None
    assert groups_for_user({}, "alice")  # the seed puts alice in groups


def test_ldaps_with_ca_file(store: Path, slapd: Any) -> None:
    from backends import slapd as L

    cfg = load(write(store, f"""
        [backends.corp]
        type = "ldap"
        url = "{slapd.ldaps_url}/{L.PEOPLE}?uid"
        bind_dn = "{L.SERVICE_DN}"
        bind_password_env = "WSGIAUTH_TEST_SVC_PW"
        ca_file = "{slapd.ca_file}"
    """, "ldaps.toml"), environ={"WSGIAUTH_TEST_SVC_PW": L.SERVICE_PW})
    assert cfg.hooks()[0]({}, "bob", L.PASSWORDS["bob"]) is True


def test_dbm_from_config(store: Path) -> None:
    htdbm = require_tool("htdbm")
    db = store / "users.dbm"
    subprocess.run([htdbm, "-cbB", "-C", "4", "-TDB", "-t", str(db), "olga", "dbm.pw", "staff,ops:comment"],
                   check=True, capture_output=True)
    cfg = load(write(store, f'[backends.d]\ntype = "dbm"\npath = "{db}"\ndbm_type = "default"\n', "dbm.toml"))
    check_password, _, groups_for_user, _ = cfg.hooks()
    assert check_password({}, "olga", "dbm.pw") is True
    assert check_password({}, "olga", "nope") is False
    assert sorted(groups_for_user({}, "olga")) == ["ops", "staff"]


def test_postgresql_from_config(store: Path) -> None:
    from backends import postgres

    if postgres.postgres_bindir() is None:
        missing("PostgreSQL is not installed (apt-get install postgresql)")
    with postgres.Postgres() as pg:
        pg.load_seed()
        (store / "pg-pw").write_text(pg.password + "\n")  # type: ignore[attr-defined]
        cfg = load(write(store, f"""
            [backends.db]
            type = "sql"
            driver = "postgresql"
            host = "127.0.0.1"
            port = {pg.port}
            database = "{pg.database}"
            user = "{pg.user}"
            password_file = "pg-pw"
            preset = "wsgiauth"
            pool_size = 2
        """, "pg.toml"))
        check_password = cfg.hooks()[0]
        assert check_password({}, "alice", "secret") == "alice@example.org"  # canonical column
        assert check_password({}, "bob", "wrong") is False
        assert check_password({}, "carol", "secret") is None  # disabled account
        cfg.close()


def test_redis_shared_cache_from_config(store: Path) -> None:
    from backends import redis as redis_launcher
    from wsgiauth.cache import Cached

    if redis_launcher.redis_server_path() is None:
        missing("redis-server is not installed (apt-get install redis-server)")
    with redis_launcher.Redis() as r:
        (store / "cache-key").write_text("0123456789abcdef0123456789abcdef\n")
        cfg = load(write(store, f"""
            [backends.f]
            type = "htpasswd"
            users = "users"
            [cache]
            ttl = 30
            redis = true
            key_file = "cache-key"
            [redis]
            url = "{r.url}"
            prefix = "cfgtest"
        """, "redis.toml"))
        assert isinstance(cfg.backend, Cached)
        check_password = cfg.hooks()[0]
        assert check_password({}, "alice", "wonder") is True
        assert check_password({}, "alice", "wonder") is True
        import redis as redis_py

        keys = redis_py.Redis.from_url(r.url).keys("cfgtest*")
        assert keys  # the grant went to the shared tier


# ---------------------------------------------------------------------------------------------------- the docs


DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_docs_name_every_key() -> None:
    text = DOC.read_text()
    tables = [config._TOP, config._COMMON, config._CANON, config._CACHE, config._THROTTLE, config._REDIS,
              config._ACCESS, *config.SCHEMA.values()]
    for keys in tables:
        for key in keys:
            assert f"`{key}`" in text, key


@pytest.mark.parametrize("form", ["sqlite:////{abs}", "sqlite:///{rel}", "{rel}"])
def test_sqlite_database_as_path_or_sqlalchemy_url(store: Path, tmp_path: Path, form: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`database` takes a path or an SQLAlchemy-style URL; a relative one is relative to the configuration file."""
    import sqlite3

    (tmp_path / "db").mkdir()
    db = tmp_path / "db" / "users.db"
    conn = sqlite3.connect(db)
    conn.executescript(SQL_SCHEMA.read_text())
    alice_hash = (store / "users").read_text().splitlines()[0].split(":", 1)[1]  # written by htpasswd -B
    conn.execute("INSERT INTO wsgiauth_user (name, password_hash) VALUES ('alice', ?)", (alice_hash,))
    conn.commit()
    conn.close()
    database = form.format(abs=str(db).lstrip("/"), rel="db/users.db")
    monkeypatch.chdir("/")  # not the configuration's directory
    cfg = load(write(tmp_path, f'[backends.db]\ntype = "sql"\ndriver = "sqlite"\ndatabase = "{database}"\n'))
    try:
        assert cfg.settings["backends"]["db"]["database"] == str(db)
        check_password = cfg.hooks()[0]
        assert check_password({}, "alice", "wonder") is True
        assert check_password({}, "alice", "wrong") is False
    finally:
        cfg.close()


@pytest.mark.parametrize("database", ["sqlite://", "sqlite://host/users.db"])
def test_sqlite_url_errors_name_the_key(store: Path, database: str) -> None:
    errs = errors_of(store, f"[backends.x]\ntype='sql'\ndriver='sqlite'\ndatabase='{database}'")
    assert any(e.startswith("backends.x.database: an SQLite URL is sqlite:///relative/path.db or "
                            "sqlite:////absolute/path.db") for e in errs), errs


def test_docs_state_the_constructors_ranges() -> None:
    text = DOC.read_text()
    for kind, keys in [*config.SCHEMA.items(), ("cache", config._CACHE), ("throttle", config._THROTTLE)]:
        for key, spec in keys.items():
            if spec.option is not None:
                assert f"| `{key}` |  | {spec.doc} ({spec.option.describe()}) |" in text, (kind, key)


def test_docs_examples_are_valid(tmp_path: Path) -> None:
    import re

    import tomllib

    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 2
    for name in ("users", "groups", "ldap.pw", "cache.key", "ca.pem"):
        (tmp_path / name).write_text("0123456789abcdef0123456789abcdef\n")
    for block in blocks:
        text = block.replace("/etc/wsgiauth/", f"{tmp_path}/").replace("/etc/ssl/certs/example-ca.pem",
                                                                         str(tmp_path / "ca.pem"))
        settings = config.parse(tomllib.loads(text), base=tmp_path, environ={"WSGIAUTH_DB_PW": "pw"})
        assert settings["backends"]


def test_htdigest_and_htgroup_types(store: Path) -> None:
    import hashlib

    cfg = load(write(store, """
        realm = "Staff"
        backend = "d"
        [backends.d]
        type = "htdigest"
        digest = "digest"
        groups = "groups"
        check_interval = 0
        [backends.g]
        type = "htgroup"
        groups = "groups"
    """, "digest-types.toml"))
    _, get_realm_hash, groups_for_user, _ = cfg.hooks()
    assert get_realm_hash({}, "alice", "Staff") == hashlib.md5(b"alice:Staff:wonder").hexdigest()
    assert get_realm_hash({}, "alice", "Other") is None
    assert "staff" in groups_for_user({}, "alice")
    assert cfg.backends["g"].groups_for_user({}, "Bob") == ["admins"]


def test_per_backend_cache_with_defaults(store: Path) -> None:
    from wsgiauth.cache import Cached

    cfg = load(write(store, """
        on_error = "deny"
        [backends.f]
        type = "htpasswd"
        users = "users"
        cache = {}
        canonicalize = { strip_domain = true }
    """, "percache.toml"))
    assert isinstance(cfg.backend, Cached)  # an empty table: a cache with the default settings
    assert cfg.backend.inner.on_error == "deny"  # type: ignore[attr-defined]
    assert cfg.hooks()[0]({}, "alice@example.org", "wonder") == "alice"


def test_mysql_from_config(store: Path) -> None:
    from backends import mariadb

    if mariadb.mariadbd_path() is None:
        missing("MariaDB is not installed (apt-get install mariadb-server)")
    with mariadb.MariaDB() as db:
        db.load_seed()
        cfg = load(write(store, f"""
            [backends.db]
            type = "sql"
            driver = "mysql"
            host = "127.0.0.1"
            port = {db.port}
            database = "{db.database}"
            user = "{db.user}"
            password_env = "WSGIAUTH_TEST_MYSQL_PW"
            timeout = 5
            connect_timeout = 5
        """, "mysql.toml"), environ={"WSGIAUTH_TEST_MYSQL_PW": db.password})
        check_password = cfg.hooks()[0]
        assert check_password({}, "alice", "secret") == "alice@example.org"
        assert check_password({}, "bob", "hunter2") is True
        assert check_password({}, "bob", "nope") is False
        cfg.close()
