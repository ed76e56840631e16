"""The client is its own distribution (clients/pyproject.toml): it imports nothing
but the standard library and its declared dependencies, and every module of it
imports in a fresh environment that holds only those dependencies (no FastAPI,
SQLAlchemy, asyncpg, cedarpy or the server)."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
PACKAGE = CLIENTS / "accord_client"
SERVER_ONLY = ("fastapi", "starlette", "sqlalchemy", "asyncpg", "aiosqlite", "cedarpy",
               "alembic", "uvicorn", "service")  # fmt: skip
# Never imported by the client's code (typer, for the two commands, requires it).
NOT_IMPORTED = ("pydantic",)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((CLIENTS / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {canonical(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in project["dependencies"]}


def imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "accord_client"}


def test_the_client_imports_only_its_declared_dependencies() -> None:
    owners = metadata.packages_distributions()
    used = {canonical(owners[name][0]) for name in imported_top_levels()}
    assert used == declared()
    assert not declared() & {canonical(n) for n in SERVER_ONLY + NOT_IMPORTED}
    assert not imported_top_levels() & set(SERVER_ONLY + NOT_IMPORTED)
    # The check can fail: the server's distribution imports what the client must not.
    assert {"fastapi", "sqlalchemy"} <= {n for n in owners if n in SERVER_ONLY}


def requirement_closure(roots: set[str]) -> set[metadata.Distribution]:
    """The installed distributions the client needs, its dependencies' included."""
    found: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform (e.g. colorama on Windows)
        found[name] = dist
        for requirement in dist.requires or []:
            if "extra ==" in requirement:
                continue
            todo.append(canonical(re.split(r"[<>=!~;\[ (]", requirement, maxsplit=1)[0]))
    return set(found.values())


def top_level_paths(dist: metadata.Distribution) -> set[Path]:
    paths: set[Path] = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first.endswith((".dist-info", ".data")) or first in {"..", "__pycache__"}:
            continue
        paths.add(Path(str(dist.locate_file(first))))
    return paths


def test_every_client_module_imports_without_the_server_dependencies(tmp_path: Path) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    for dist in requirement_closure(declared()):
        for path in top_level_paths(dist):
            if path.exists() and not (libs / path.name).exists():
                (libs / path.name).symlink_to(path)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    Path(site, "accord_client_alone.pth").write_text(f"{libs}\n{CLIENTS}\n", encoding="utf-8")
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    script = (
        "import importlib, importlib.util\n"
        f"for name in {list(SERVER_ONLY)!r}:\n"
        "    assert importlib.util.find_spec(name) is None, name\n"
        "import accord_client\n"
        f"for module in {modules!r}:\n"
        "    importlib.import_module('accord_client.' + module)\n"
        "from accord_client.audit_cli import main as audit_main\n"
        "from accord_client.consent_cli import main as consent_main\n"
        "print('imported', len(" + repr(modules) + "))\n"
    )
    # From an empty directory: `-c` puts the working directory first on sys.path.
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(modules)}"


def test_the_distribution_ships_the_package_and_the_two_commands() -> None:
    project = tomllib.loads((CLIENTS / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "accord-client"
    assert project["project"]["scripts"] == {
        "accord-audit": "accord_client.audit_cli:main",
        "accord-consent": "accord_client.consent_cli:main",
    }
    assert project["tool"]["setuptools"]["packages"]["find"]["include"] == ["accord_client*"]
    server = tomllib.loads((CLIENTS.parent / "pyproject.toml").read_text(encoding="utf-8"))
    version = project["project"]["version"]
    assert f"accord-client=={version}" in server["project"]["dependencies"]
    assert "accord_client*" not in server["tool"]["setuptools"]["packages"]["find"]["include"]
