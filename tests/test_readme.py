"""The README's recipes run as written (paths moved into a temp dir)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
WSGIAUTH = str(Path(sys.executable).parent / "wsgiauth")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([WSGIAUTH, *args], input=stdin, capture_output=True, text=True, timeout=120)


def environ() -> dict:
    return {"wsgi.errors": io.StringIO(), "REMOTE_ADDR": "127.0.0.1"}


def test_recipe_1_config_file_commands_and_auth_script(tmp_path: Path) -> None:
    toml = blocks("toml")[0]
    (tmp_path / "site.toml").write_text(toml)
    users, groups = tmp_path / "users", tmp_path / "groups"

    added = run("user", "add", "--htpasswd", str(users), "alice", stdin="correct horse\n")
    assert added.returncode == 0, added.stderr
    assert "added alice (bcrypt)" in README and added.stdout.strip() == "added alice (bcrypt)"
    grouped = run("user", "add", "--htgroup", str(groups), "alice", "--group", "staff")
    assert grouped.returncode == 0 and grouped.stdout.strip() == "alice is in staff"

    check = run("check", str(tmp_path / "site.toml"), "alice", stdin="correct horse\n")
    assert check.returncode == 0, check.stderr
    for line in ("decision:  granted", "user:      alice", "groups:    staff", "backend:   files"):
        assert line in README and line in check.stdout
    assert run("check", str(tmp_path / "site.toml"), "alice", stdin="wrong\n").returncode == 1

    # The three-line auth.wsgi of the README, pointed at this file.
    script = next(b for b in blocks("python") if "load(" in b)
    namespace: dict = {}
    exec(script.replace("/etc/wsgiauth/site.toml", str(tmp_path / "site.toml")), namespace)
    assert namespace["check_password"](environ(), "alice", "correct horse") is True
    assert namespace["check_password"](environ(), "alice", "nope") is False
    assert namespace["groups_for_user"](environ(), "alice") == ["staff"]
    assert namespace["allow_access"](environ(), "127.0.0.1") is None


def test_recipe_2_four_line_auth_script(tmp_path: Path) -> None:
    assert run("user", "add", "--htpasswd", str(tmp_path / "htpasswd"), "bob", stdin="pw-of-bob\n").returncode == 0
    assert run("user", "add", "--htgroup", str(tmp_path / "htgroup"), "bob", "--group", "staff").returncode == 0
    script = next(b for b in blocks("python") if "htpasswd.Backend" in b)
    assert len(script.strip().splitlines()) == 4
    script = script.replace("/srv/site/.htpasswd", str(tmp_path / "htpasswd"))
    script = script.replace("/srv/site/.htgroup", str(tmp_path / "htgroup"))
    namespace: dict = {}
    exec(script, namespace)
    assert namespace["check_password"](environ(), "bob", "pw-of-bob") is True
    assert namespace["check_password"](environ(), "nobody", "pw-of-bob") is None
    assert namespace["groups_for_user"](environ(), "bob") == ["staff"]


def test_recipes_type_check_under_mypy_strict(tmp_path: Path) -> None:
    """The package ships py.typed, so a user's mypy --strict must accept the README's auth scripts as written."""
    scripts = blocks("python")
    assert len(scripts) >= 2
    for i, script in enumerate(scripts):
        (tmp_path / f"recipe_{i}.py").write_text(script)
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".mypy"),
                             *sorted(str(p) for p in tmp_path.glob("recipe_*.py"))],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lazy_public_names_are_typed_and_listed() -> None:
    """Every name in __all__ has a binding a type checker sees, and dir() lists it, while import stays lazy."""
    import ast

    import wsgiauth

    tree = ast.parse(Path(wsgiauth.__file__).read_text())
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            bound.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Assign):
            bound.update(t.id for t in node.targets if isinstance(t, ast.Name))
    assert set(wsgiauth.__all__) <= bound
    assert set(wsgiauth.__all__) <= set(dir(wsgiauth))
    code = "import sys, wsgiauth; print(sorted(m for m in ('wsgiauth.config', 'wsgiauth.cache', 'wsgiauth.throttle') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
