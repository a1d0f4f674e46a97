"""The memory a step may still use: what the machine has free, or what its container's
limit leaves, whichever is less (a Kubeflow pod sees the whole node's memory as free)."""

import os
from typing import Optional

import psutil

# cgroup v2, then v1: the container's limit and what it uses now.
_CGROUP_FILES = (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                 ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"))


def _read_number(path: str) -> Optional[int]:
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def container_headroom(files=_CGROUP_FILES) -> Optional[int]:
    """Bytes the container's memory limit leaves, or None when there is no limit."""
    for limit_file, usage_file in files:
        limit, usage = _read_number(limit_file), _read_number(usage_file)
        # v1 reports "no limit" as a huge number.
        if limit is not None and usage is not None and limit < psutil.virtual_memory().total:
            return max(0, limit - usage)
    return None


def available_bytes() -> int:
    """Bytes this process may still allocate without swapping or being killed."""
    free = psutil.virtual_memory().available
    headroom = container_headroom() if os.path.isdir("/sys/fs/cgroup") else None
    return free if headroom is None else min(free, headroom)
