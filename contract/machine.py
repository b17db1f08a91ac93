"""What this machine can hold: read by training (where to cache) and export (what fits)."""
from __future__ import annotations

import math
from pathlib import Path


def available_bytes() -> int:
    """MemAvailable, lowered to the cgroup's limit when the process runs under one."""
    available = math.inf
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available = int(line.split()[1]) * 1024
    limit, usage = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    try:
        if limit.read_text().strip() != "max":
            available = min(available, int(limit.read_text()) - int(usage.read_text()))
    except (OSError, ValueError):
        pass
    return int(available) if available != math.inf else 1 << 62
