"""H13 (a row this project adds, docs/threat-model.md): the service killed while it
creates a key leaves a temporary copy of that secret key in the key directory.
The next start removes every such copy and never reads one (issue 22 item 15)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from service.keyring import CHECKPOINT_KEY, CURSOR_SECRET, load_keyring
from service.settings import Settings

# Creates the checkpoint key as the service does, and is killed (SIGKILL) between
# writing the temporary copy and linking it into place.
KILLED_WHILE_CREATING = """
import os, signal, sys
from pathlib import Path
os.link = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
from service.crypto import write_secret_file
write_secret_file(Path(sys.argv[1]) / "checkpoint.ed25519", b"K" * 32)
"""


async def test_H13_a_start_after_a_kill_during_key_creation_removes_the_copy(
    tmp_path: Path,
) -> None:
    key_dir = tmp_path / "keys"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", KILLED_WHILE_CREATING, str(key_dir)
    )
    assert await asyncio.wait_for(child.wait(), 60) == -9
    leftovers = [p for p in key_dir.iterdir() if p.name.startswith(f".{CHECKPOINT_KEY}.")]
    assert len(leftovers) == 1
    assert leftovers[0].read_bytes() == b"K" * 32
    (key_dir / "notes.txt").write_text("an operator's own file")
    (key_dir / f".{CURSOR_SECRET}.abc123").write_bytes(b"C" * 32)

    ring = load_keyring(Settings(key_dir=key_dir), create=True)

    names = sorted(p.name for p in key_dir.iterdir())
    assert not [n for n in names if n.startswith(".")], names
    assert "notes.txt" in names  # only the key files' temporaries are removed
    # Never read: the keys are new ones, not the leftovers' bytes.
    assert (key_dir / CHECKPOINT_KEY).read_bytes() != b"K" * 32
    assert ring.cursor_secret != b"C" * 32


def test_H13_without_creating_leftovers_are_removed_too(tmp_path: Path) -> None:
    """Production (keys made by `accord keys init`, never at start): the same clean-up."""
    key_dir = tmp_path / "keys"
    load_keyring(Settings(key_dir=key_dir), create=True)
    stray = key_dir / f".{CHECKPOINT_KEY}.x1y2z3"
    stray.write_bytes(b"K" * 32)
    load_keyring(Settings(key_dir=key_dir), create=False)
    assert not stray.exists()
