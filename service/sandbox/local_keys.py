"""The demo organizations' own keys, on the machine that runs `accord demo`.

In a real federation each organization's admin keeps its key file; in the sandbox
one person plays every organization, so the command keeps all five in one local
directory (default `.accord/demo-keys`, git-ignored with the rest of `.accord/`):
the directory 0700, each file 0600, one file per organization id, protected by a
fixed passphrase. The keys guard fictional data only: never reuse them, or this
passphrase, for anything real.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from accord_client.api import AccordClient
from accord_client.api_models import AccordAPIError

# The `accord demo` command, in the demo organizations' stead: never the server (the
# import contract `sandbox-command-not-served` keeps service.app from importing it).
from accord_client.keys import (  # noqa: TID251
    OrganizationKeys,
    generate_organization_keys,
    load_key_file,
    rotate,
    save_key_file,
)

DEFAULT_KEY_DIR = Path(".accord/demo-keys")
DEMO_PASSPHRASE = "accord-demo-only"  # noqa: S105 - fictional data only (docstring)


def private_directory(path: Path) -> Path:
    """`path` as a directory only its owner can enter (0700), created if missing."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def key_file(key_dir: Path, org_id: str) -> Path:
    return key_dir / f"{org_id}.keys.json"


def _registered(admin: AccordClient, org_id: str) -> tuple[str | None, str | None]:
    keys = admin.get_organization(org_id).get("keys") or {}
    enc, sig = keys.get("encryption"), keys.get("signing")
    return (enc["key_id"] if enc else None, sig["key_id"] if sig else None)


def ensure_keys(admin: AccordClient, key_dir: Path, org_id: str) -> tuple[OrganizationKeys, bool]:
    """The organization's keys from the local file (made and saved if missing), and
    registered as its current keys in the directory by its org_admin (`admin`).
    Returns the keys and whether they were (re)registered now."""
    path = key_file(private_directory(key_dir), org_id)
    if path.exists():
        keys = load_key_file(path, DEMO_PASSPHRASE)
    else:
        keys = generate_organization_keys(org_id)
        save_key_file(keys, path, DEMO_PASSPHRASE)
    current = (keys.current_encryption_key.key_id, keys.current_signing_key.key_id)
    if _registered(admin, org_id) == current:
        return keys, False
    try:
        admin.register_keys(org_id, keys)
    except AccordAPIError as exc:
        if exc.status not in (409, 422):
            raise
        # These public keys were registered once and replaced since (by another
        # sandbox directory): a registered key is never taken back, so rotate.
        keys = rotate(keys)
        save_key_file(keys, path, DEMO_PASSPHRASE, overwrite=True)
        admin.register_keys(org_id, keys)
    return keys, True
