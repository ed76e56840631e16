"""Documentation drift: every setting is documented."""

from __future__ import annotations

from pathlib import Path

from service.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_configuration_doc() -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"`ACCORD_{name.upper()}`" not in text]
    assert not missing, f"undocumented settings: {missing}"
