"""The contract run: schemathesis against the running service, on each engine.

    .venv/bin/python tests/contract/run_schemathesis.py [--seconds N] [--pg-url URL]

For SQLite and, when given (or in ACCORD_TEST_PG_URL), an empty PostgreSQL database,
it migrates the database, seeds one organization per sector that has a role to play
and a development token per role (caseworker, supervisor, investigator, prosecutor,
auditor, org_admin, platform_admin), starts `accord serve` on a free port, and runs
schemathesis with every phase (examples, coverage, fuzzing, stateful) for a bounded
time, the tokens taken in turn (tests/contract/schemathesis_hooks.py). Checks (`CHECKS`):
no server error, no undocumented status, the documented content type, headers and
body schema, invalid input refused, 405 with a complete Allow, and more. The survivor's
pages (`/s/`, HTML behind a session cookie) are left out: tests/pages covers them.

Exit status 0 only if every engine's run passed; the summary names each engine's
result and where its report is. Runs in .ci/run (40 s of fuzzing per engine, about
3 minutes in all).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Every check but two. `positive_data_acceptance`: the service refuses some
# schema-valid requests by rules the schema cannot state (an opaque cursor, the policy
# vocabulary, from_size <= to_size, references to objects that exist), with documented
# statuses. `ensure_resource_availability`: the tokens change from call to call, and
# an object created by one organization is, by design, 404 to the others (API.md:
# never reveal existence across organizations).
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "use_after_free",
        "ignored_auth",
    )
)
PHASES = "examples,coverage,fuzzing,stateful"
# (organization key, sector, roles of its principal)
PRINCIPALS = (
    ("vsp", "victim_services", ("caseworker", "supervisor")),
    ("vsp", "victim_services", ("org_admin",)),
    ("police", "law_enforcement", ("investigator",)),
    ("prosecutor", "prosecution", ("prosecutor",)),
    ("oversight", "oversight", ("auditor",)),
    ("platform", "government", ("platform_admin",)),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _seed(env: dict[str, str]) -> list[str]:
    """Migrate the database and create the development keys (the app's own start-up),
    create the organizations, and issue a token per principal."""
    os.environ.update(env)
    from service.app import create_app
    from service.auth.dev_tokens import issue_dev_token
    from service.auth.principals import Role
    from service.cli import CLI_PRINCIPAL
    from service.clock import SystemClock
    from service.organizations import service as org_service
    from service.organizations.schemas import OrganizationCreate
    from service.sectors import Sector
    from service.settings import Settings

    settings = Settings()
    clock = SystemClock()
    app = create_app(settings, clock=clock)
    orgs: dict[str, uuid.UUID] = {}
    async with app.router.lifespan_context(app), app.state.sessionmaker() as session:
        for key, sector, _roles in PRINCIPALS:
            if key not in orgs:
                org = await org_service.create(
                    session,
                    principal=CLI_PRINCIPAL,
                    data=OrganizationCreate(name=f"Contract {key}", sector=Sector(sector)),
                    clock=clock,
                )
                orgs[key] = org.id
        await session.commit()
    return [
        issue_dev_token(
            settings,
            clock=clock,
            org_id=orgs[key],
            roles=[Role(r) for r in roles],
            sub=f"contract-{'-'.join(roles)}",
        )
        for key, _sector, roles in PRINCIPALS
    ]


def _wait_ready(url: str, server: subprocess.Popen[bytes], seconds: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the service exited at start")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the service did not start in time")


def run_engine(
    name: str, database_url: str, seconds: int, work: Path, checks: str
) -> tuple[int, float]:
    """One engine: seed, serve, fuzz. Returns (schemathesis exit status, seconds)."""
    started = time.monotonic()
    keys = work / "keys"
    keys.mkdir(mode=0o700)
    env = {
        "ACCORD_ENVIRONMENT": "development",
        "ACCORD_DATABASE_URL": database_url,
        "ACCORD_KEY_DIR": str(keys),
        "ACCORD_LOG_LEVEL": "WARNING",
        # The fuzzer sends hundreds of bad tokens and records requests a second.
        "ACCORD_RATE_LIMIT_FAILED_AUTH": "100000/minute",
    }
    seed = subprocess.run(
        [sys.executable, __file__, "--seed-only"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if seed.returncode != 0:
        print(f"{name}: seeding failed:\n{seed.stderr[-2000:]}", file=sys.stderr)
        return 2, time.monotonic() - started
    tokens = json.loads(seed.stdout)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "service.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "accord"), "serve", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        try:
            _wait_ready(url, server)
        except RuntimeError as error:
            print(f"{name}: {error}", file=sys.stderr)
            return 2, time.monotonic() - started
        command = [
            str(BIN / "schemathesis"),
            "run",
            f"{url}/openapi.json",
            "--phases",
            PHASES,
            "--checks",
            checks,
            "--max-time",
            str(seconds),
            "--exclude-path-regex",
            "^/s/",
            "--workers",
            "2",
            "--seed",
            "21",
            "--request-timeout",
            "10",
            "--suppress-health-check",
            "all",
            "--report",
            "junit",
            "--report-dir",
            str(work / "report"),
        ]
        hooks = {
            "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks",
            "ACCORD_CONTRACT_TOKENS": json.dumps(tokens),
            "PYTHONPATH": str(ROOT),
        }
        print(f"--- schemathesis on {name} ({seconds} s budget)", flush=True)
        result = subprocess.run(command, env={**os.environ, **hooks}, cwd=ROOT, check=False)
        return result.returncode, time.monotonic() - started
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing budget per engine")
    parser.add_argument("--pg-url", default=os.environ.get("ACCORD_TEST_PG_URL"))
    parser.add_argument("--checks", default=CHECKS, help="schemathesis checks (comma-separated)")
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_only:
        print(json.dumps(asyncio.run(_seed({}))))
        return 0
    engines = [("sqlite", None)]
    if args.pg_url:
        engines.append(("postgresql", args.pg_url))
    else:
        print("postgresql: skipped (no --pg-url and no ACCORD_TEST_PG_URL)")
    results = []
    with tempfile.TemporaryDirectory(prefix="accord-contract-") as tmp:
        for name, url in engines:
            work = Path(tmp) / name
            work.mkdir()
            database_url = url or f"sqlite+aiosqlite:///{work / 'accord.db'}"
            code, took = run_engine(name, database_url, args.seconds, work, args.checks)
            if code != 0:
                print((work / "service.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            results.append((name, code, took))
    print(f"--- contract summary (schemathesis, checks: {args.checks})")
    for name, code, took in results:
        print(f"{name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {took:.0f} s")
    return 0 if all(code == 0 for _name, code, _took in results) else 1


if __name__ == "__main__":
    sys.exit(main())
