"""Process identity on this machine: whether a pid is alive, and whether it is still the
process that recorded it (its kernel start time), as locks and statuses need it.

Example:
>>> import os
>>> me = identity()
>>> me["pid"] == os.getpid(), owner_alive(me["pid"], me["process_start"])
(True, True)
"""

import os
import socket
from pathlib import Path

MAX_PID = 2**31 - 1
"""The largest pid: a ``pid_t`` is a C int (Linux allows at most 2**22, macOS 99,998)."""


def process_alive(pid):
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= MAX_PID:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def process_start(pid):
    """The kernel's start time of process ``pid`` (clock ticks since boot), or None where it
    cannot be read: with the pid it identifies one process, even once the pid is reused."""
    try:
        fields = Path(f"/proc/{int(pid)}/stat").read_text().rpartition(")")[2].split()
        return int(fields[19])  # field 22 of proc(5); the split starts at field 3
    except (OSError, ValueError, TypeError, IndexError):
        return None


def process_command(pid):
    """The command line of process ``pid`` as one string ('' where it cannot be read)."""
    try:
        return Path(f"/proc/{int(pid)}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except (OSError, ValueError, TypeError):
        return ""


def owner_alive(pid, started=None):
    """Whether process ``pid`` is alive and, when ``started`` is known, is the same process
    that recorded it (not a later one that got the same pid)."""
    if not process_alive(pid):
        return False
    return started is None or process_start(pid) in (None, started)


def identity():
    """This process as a lock or status records it: ``pid``, ``host`` and ``process_start``."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "process_start": process_start(pid)}


def holder_alive(pid, host, started=None):
    """Whether the process ``pid`` on ``host`` (None: this one) that a lock names is alive
    (another host's is assumed to be)."""
    if host not in (None, socket.gethostname()):
        return True  # another machine's process cannot be checked from here: assume it lives
    return owner_alive(pid, started)
