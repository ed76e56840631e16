"""Write the synchronous client from the asynchronous one: the async modules are
the one source, the sync twins are generated (token replacements, like httpcore's
unasync), so the two clients differ only in their transport.

    .venv/bin/python clients/tools/unasync.py          # rewrite the sync modules
    .venv/bin/python clients/tools/unasync.py --check  # exit 1 if one is stale

tests/client/test_client_surface.py runs the check. Needs only the standard
library and ruff (the generated code is formatted like the rest).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "accord_client"
# async source -> generated sync module
MODULES = {
    "_async_client.py": "_client.py",
    "_async_directory.py": "_sync_directory.py",
    "_async_cases.py": "_sync_cases.py",
    "_async_referrals.py": "_sync_referrals.py",
    "_async_records.py": "_sync_records.py",
    "_async_audit.py": "_sync_audit.py",
    "_async_events.py": "_sync_events.py",
    "_async_admin.py": "_sync_admin.py",
    "_async_reports.py": "_sync_reports.py",
}
# Applied in order, on whole words.
REPLACEMENTS = (
    (r"\bawait ", ""),
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\baread\b", "read"),
    (r"\baiter_(\w+)\b", r"iter_\1"),
    (r"\b__aenter__\b", "__enter__"),
    (r"\b__aexit__\b", "__exit__"),
    (r"\baclose\b", "close"),
    (r"\bafollow_cursors\b", "follow_cursors"),
    (r"\baccord_client\._async_client\b", "accord_client._client"),
    (r"\baccord_client\._async_(\w+)\b", r"accord_client._sync_\1"),
    (r"\bAsync([A-Z]\w*)\b", r"\1"),
    (r"\basynchronous\b", "synchronous"),
    (r"\(async\)", "(sync)"),
)
# `for x in y: yield x` reads `yield from y` in a plain generator (ruff UP028).
_YIELD_LOOP = re.compile(
    r"^(?P<indent> *)for (?P<name>\w+) in (?P<iterable>.+):\n(?P=indent)    yield (?P=name)\n",
    re.M,
)


def header(source: str) -> str:
    return f"# Generated from accord_client/{source} by clients/tools/unasync.py: do not edit.\n"


def unasync(text: str, source: str) -> str:
    for pattern, replacement in REPLACEMENTS:
        text = re.sub(pattern, replacement, text)
    text = _YIELD_LOOP.sub(lambda m: f"{m['indent']}yield from {m['iterable']}\n", text)
    return header(source) + text


def ruff_format(text: str, filename: str) -> str:
    """Sort the imports (the renamed modules move) and format, as the repository does."""
    ruff = Path(sys.executable).with_name("ruff")
    binary = str(ruff) if ruff.exists() else "ruff"
    for command in (
        [binary, "check", "--select", "I", "--fix", "--quiet", "--exit-zero"],
        [binary, "format"],
    ):
        done = subprocess.run(  # noqa: S603 - our own ruff, no shell
            [*command, "--stdin-filename", filename, "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        )
        text = done.stdout
    return text


def expected() -> dict[Path, str]:
    out: dict[Path, str] = {}
    for source, target in MODULES.items():
        text = (PACKAGE / source).read_text(encoding="utf-8")
        out[PACKAGE / target] = ruff_format(unasync(text, source), str(PACKAGE / target))
    return out


def main(argv: list[str]) -> int:
    stale = []
    for path, text in expected().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.name)
        if "--check" not in argv:
            path.write_text(text, encoding="utf-8")
    if stale and "--check" in argv:
        print("stale sync modules (run clients/tools/unasync.py):", *stale)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
