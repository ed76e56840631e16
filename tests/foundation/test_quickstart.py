"""docs/quickstart.md works as written: against a live development `accord serve`,
`accord demo` and then the page's own Python script end in a delivered referral
that the shelter opened (issue 21: "a quickstart that ends in a delivered referral")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

from typer.testing import CliRunner

from service.cli import app as cli
from tests.support.databases import TestDatabase
from tests.support.processes import free_port, service_env, wait_until_healthy

PAGE = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
ACCORD = str(Path(sys.executable).parent / "accord")


def quickstart_script() -> str:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 1, "docs/quickstart.md should hold exactly one Python script"
    return str(blocks[0])


async def test_the_quickstart_ends_in_a_delivered_referral(
    db: TestDatabase, key_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = service_env(db, key_dir, ACCORD_ENVIRONMENT="development")
    with (tmp_path / "serve.log").open("wb") as log:
        server = await asyncio.create_subprocess_exec(
            ACCORD, "serve", "--port", str(port),
            cwd=tmp_path, env=env, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        await wait_until_healthy(base)
        user = tmp_path / "user"
        user.mkdir()
        args = ["demo", "--url", base, "--output", str(user / "demo.json")]
        demo = await asyncio.to_thread(
            CliRunner().invoke, cli, [*args, "--key-dir", str(user / "keys")]
        )
        assert demo.exit_code == 0, demo.output
        script = user / "first_referral.py"
        script.write_text(quickstart_script(), encoding="utf-8")
        run = await asyncio.create_subprocess_exec(
            sys.executable, str(script), cwd=user,
            env={**os.environ, "ACCORD_URL": base},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(run.communicate(), 120)
        assert run.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert re.fullmatch(r"sent [0-9a-f-]{36} sent", lines[0]), lines[0]
        assert lines[1:] == ["delivered fields: ['needs', 'phone']", "status: delivered"]
    finally:
        if server.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                os.killpg(server.pid, signal.SIGKILL)
                await server.wait()
