"""What the `accord` command checks before it acts, so that a refusal is one clear
message with what to do, never a traceback: the whole configuration at once, the
key files production needs, the organization a development token is for."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import typer

from service.settings import Settings, SettingsRefusedError, load_settings
from service.storage import make_engine


def settings_or_exit() -> Settings:
    """The environment's settings, or every problem with them in one message (each
    with the variable to set) and exit status 2: never a traceback."""
    try:
        return load_settings()
    except SettingsRefusedError as exc:
        typer.echo(
            f"accord: refusing to start; change {len(exc.lines)} setting(s) "
            "(docs/configuration.md):",
            err=True,
        )
        for line in exc.lines:
            typer.echo(f"  - {line}", err=True)
        raise typer.Exit(2) from None


def missing_keys(settings: Settings) -> list[str]:
    """Production never generates keys: name every missing key file at once."""
    if settings.generates_dev_keys:
        return []
    from service import keyring

    names = (
        keyring.CHECKPOINT_KEY,
        keyring.RECEIPT_KEY,
        keyring.SURVIVOR_TOKEN_KEY,
        keyring.CURSOR_SECRET,
        keyring.WEBHOOK_KEY,
        keyring.WEBHOOK_SECRETS_KEY,
    )
    missing = [name for name in names if not (settings.key_dir / name).is_file()]
    if not missing:
        return []
    return [
        f"ACCORD_KEY_DIR: {settings.key_dir} lacks {', '.join(missing)}; create them with "
        "`accord keys init` (or point ACCORD_KEY_DIR at the directory that holds them)"
    ]


def require_organization(settings: Settings, org_id: uuid.UUID) -> None:
    """A token for an organization the service does not know would only ever get 401:
    refuse to sign it (ValueError, with what to do)."""
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError

    from service.organizations.models import Organization

    where = "ACCORD_DATABASE_URL's database"
    if settings.is_sqlite:
        from sqlalchemy.engine import make_url

        path = make_url(settings.database_url).database or ""
        where = f"the database {path}"
        if not path or not Path(path).exists():
            raise ValueError(
                f"no database at {path or '(none)'}: run this where `accord serve` runs, "
                "or set ACCORD_DATABASE_URL to the service's database"
            )

    async def lookup() -> bool:
        engine = make_engine(settings)
        try:
            async with engine.connect() as conn:
                found = await conn.scalar(
                    select(Organization.id).where(
                        Organization.id == org_id, Organization.active.is_(True)
                    )
                )
                return found is not None
        except DBAPIError:  # no schema yet: no organization either
            return False
        finally:
            await engine.dispose()

    if not asyncio.run(lookup()):
        raise ValueError(
            f"no active organization {org_id} in {where}: create it with `accord org "
            "create` (or `accord demo`), or set ACCORD_DATABASE_URL to the service's database"
        )
