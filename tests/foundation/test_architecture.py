"""The layout's rules hold on every commit (docs/architecture.md).

- No import cycle among the modules of service/, counting imports inside
  functions (grimp reads every import statement, as import-linter does): a cycle
  is how a layer quietly starts depending on the one above it.
- The import contracts in pyproject.toml (`lint-imports` in .ci/run) are kept; the
  test runs them too, so the README's test command alone catches a broken layer.
- The server never imports the client library's decrypting functions (service/
  ruff.toml bans them; this checks the ban is still configured and effective)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest
from importlinter.application.use_cases import lint_imports
from importlinter.configuration import configure

ROOT = Path(__file__).resolve().parents[2]


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_strongly_connected_finds_a_cycle_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_service_has_no_import_cycle() -> None:
    graph = grimp.build_graph("service", cache_dir=None)
    modules = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    service = {m: {t for t in targets if t.startswith("service")} for m, targets in modules.items()}
    assert strongly_connected(service) == []


def test_import_contracts_are_kept() -> None:
    # lint_imports returns True when every contract is kept; it prints the report.
    configure()  # what the lint-imports command does first
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None)


@pytest.mark.parametrize(
    "line",
    [
        "from accord_client.envelope import open_delivery",
        "from accord_client.crypto import open_value",
        "from accord_client.crypto import secret_open",
        "from accord_client.keys import decrypt_key_file",
    ],
)
def test_service_may_not_import_a_decrypting_function(line: str, tmp_path: Path) -> None:
    # A probe file inside service/ picks up service/ruff.toml like any module there.
    probe = ROOT / "service" / f"_probe_{tmp_path.name}.py"
    probe.write_text(f"{line}  # noqa: F401\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "TID251", str(probe)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    finally:
        probe.unlink()
    assert result.returncode == 1, result.stdout
    assert "TID251" in result.stdout
