"""The offline verifier's probe for bench/audit.py: verifies one export as
`accord-audit verify --jobs N` does, in this process and its workers, importing
only the client library (so the memory measured is the verifier's), and prints,
as one JSON line, its time, CPU time (workers included) and the peak resident
memory of this process and of its largest worker.

    .venv/bin/python bench/audit_verify_probe.py FILE BASE64_PUBLIC_KEY JOBS
"""

from __future__ import annotations

import base64
import json
import resource
import sys
import time
from pathlib import Path

from accord_client.audit_verify_parallel import verify_file

ORIGIN = "bench.example/audit"


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    path, key, jobs = Path(sys.argv[1]), base64.b64decode(sys.argv[2]), int(sys.argv[3])
    started, cpu = time.perf_counter(), time.process_time()
    result = verify_file(path, public_key=key, origin=ORIGIN, require_end=True, jobs=jobs)
    seconds = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "entries": result.size,
        "root": base64.b64encode(result.root).decode(),
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu + children.ru_utime + children.ru_stime,
        "peak_kb": _peak_kb(),
        "worker_peak_kb": children.ru_maxrss,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
