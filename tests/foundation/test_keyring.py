"""The service's own keys in a new key directory, created by processes that start
together (`accord serve --workers N`): each key file appears whole, once, owner-only,
and every process ends up with the same keys. Found by bench/soak.py: with four
workers on a new directory, one worker's exclusive create met another's file, its
start-up failed, and `accord serve` stopped."""

from __future__ import annotations

import asyncio
import stat
import sys
from pathlib import Path

import pytest

from service.crypto import FileSigner, write_secret_file

PROCESSES = 8
# Each process waits for the go file, then loads (creating) the keyring at once.
CHILD = """
import sys, time
from pathlib import Path
from service.keyring import load_keyring
from service.settings import Settings
key_dir, go = Path(sys.argv[1]), Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
ring = load_keyring(Settings(key_dir=key_dir), create=True)
print(ring.checkpoint.public_key.hex(), ring.receipt.public_key.hex(), ring.cursor_secret.hex())
"""


async def test_processes_starting_together_create_each_key_once(tmp_path: Path) -> None:
    key_dir, go = tmp_path / "keys", tmp_path / "go"
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            str(key_dir),
            str(go),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    await asyncio.sleep(1.0)  # every child is waiting for the go file
    go.touch()
    results = [await asyncio.wait_for(child.communicate(), 60) for child in children]
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err.decode()[-1500:]
    assert len({out for out, _ in results}) == 1  # the same keys in every process
    files = sorted(p.name for p in key_dir.iterdir())
    assert not [name for name in files if name.startswith(".")]  # no temporary left
    for path in key_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_write_secret_file_never_overwrites_and_reports_who_created(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secret"
    assert write_secret_file(path, b"first") is True
    assert write_secret_file(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret"]


def test_load_or_create_loads_a_key_another_process_wrote_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between "does it exist?" and the create: another process's key
    appears there, and this one loads it instead of failing."""
    path = tmp_path / "checkpoint.ed25519"
    theirs = FileSigner.load_or_create(path)
    monkeypatch.setattr(Path, "exists", lambda self: False)  # checked before it appeared
    ours = FileSigner.load_or_create(path)
    assert ours.public_key == theirs.public_key
