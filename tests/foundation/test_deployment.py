"""The container files agree with the service (docs/deployment.md): every `ACCORD_`
variable they set is a setting, the keys live where the volume is, the image runs as
a non-root user and probes a route that exists."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
COMPOSE = (ROOT / "compose.yaml").read_text(encoding="utf-8")


def test_every_accord_variable_in_the_container_files_is_a_setting() -> None:
    known = {f"ACCORD_{name.upper()}" for name in Settings.model_fields}
    # Compose's own interpolation variables (host port range), not the service's.
    compose_only = {"ACCORD_PORT", "ACCORD_PORT_LAST"}
    used = set(re.findall(r"\bACCORD_[A-Z_]+\b", DOCKERFILE + COMPOSE)) - compose_only
    assert used
    assert sorted(used - known) == []


def test_the_keys_live_in_the_volume_and_compose_mounts_them_there() -> None:
    key_dir = re.search(r"ACCORD_KEY_DIR=(\S+)", DOCKERFILE)
    volume = re.search(r'VOLUME \["([^"]+)"\]', DOCKERFILE)
    assert key_dir
    assert volume
    assert key_dir.group(1).startswith(volume.group(1) + "/")
    assert f"ACCORD_KEY_DIR: {key_dir.group(1)}" in COMPOSE
    assert f"- keys:{key_dir.group(1)}" in COMPOSE


def test_the_image_runs_as_a_non_root_user_and_probes_readiness() -> None:
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in ("0", "root")
    assert "http://127.0.0.1:8000/readyz" in DOCKERFILE
    assert "EXPOSE 8000" in DOCKERFILE
    assert re.search(r"^FROM \S+ AS build$", DOCKERFILE, re.MULTILINE)
    assert "COPY --from=build" in DOCKERFILE
