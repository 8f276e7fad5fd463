"""A throwaway PostgreSQL server for the tests and benchmarks of the clinic store.

Uses the system's PostgreSQL (Debian's ``postgresql`` package: ``initdb`` and
``pg_ctl`` under ``/usr/lib/postgresql/VERSION/bin``; ``.ci/run`` installs it).
PostgreSQL refuses to run as root, and CI and these machines run as root: the
server then runs as an unprivileged user (``postgres`` where the package made it,
else ``scalppen-pg``, created if missing). The cluster lives in a temporary
directory, listens on 127.0.0.1 on a free port and on a socket in that directory,
trusts local connections (nothing else can reach it), and is removed on stop.

    with throwaway_server(tmp) as url:   # postgresql://scalppen@127.0.0.1:PORT/scalppen
        ...

Run as a script it starts one and prints its URL until interrupted.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: The role and database the tests use.
ROLE = "scalppen"
DATABASE = "scalppen"
#: The unprivileged user made to run the server when root runs the tests.
FALLBACK_USER = "scalppen-pg"


class ServerUnavailable(RuntimeError):
    """No PostgreSQL binaries here, or the server would not start."""


def bin_dir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl`` (the newest installed version)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]))
    if not versions:
        raise ServerUnavailable(
            "PostgreSQL is not installed: apt-get install postgresql (CI's .ci/run does)"
        )
    return Path(versions[-1]).parent


def _run_as() -> str | None:
    """The user to run the server as (None: this one, when it is not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    FALLBACK_USER], check=True, capture_output=True)
    return FALLBACK_USER


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cmd(user: str | None, *argv: str) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else list(argv)


@contextlib.contextmanager
def throwaway_server(parent: Path | None = None) -> Iterator[str]:
    """Start a server; yield its URL; stop it and remove its files."""
    binaries = bin_dir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="scalppen-pg-", dir=parent))
    data, log = root / "data", root / "server.log"
    try:
        if user:
            entry = pwd.getpwnam(user)
            os.chown(root, entry.pw_uid, entry.pw_gid)
            # the server must reach its directory through the parents
            for p in root.parents:
                if p == Path("/"):
                    break
                mode = p.stat().st_mode
                if not mode & 0o001:
                    os.chmod(p, mode | 0o001)
        root.chmod(0o700)
        subprocess.run(_cmd(user, str(binaries / "initdb"), "-D", str(data), "-U", ROLE,
                            "--auth=trust", "--encoding=UTF8", "--no-sync"),
                       check=True, capture_output=True, cwd=root)
        port = _free_port()
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                   f"-c unix_socket_directories={root} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=100")
        started = subprocess.run(
            _cmd(user, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
                 "-w", "-t", "60", "start"),
            capture_output=True, cwd=root, text=True,
        )
        if started.returncode != 0:
            tail = log.read_text()[-400:] if log.exists() else started.stderr
            raise ServerUnavailable(f"PostgreSQL would not start: {tail.strip()}")
        subprocess.run(_cmd(user, str(binaries / "createdb"), "-h", str(root), "-p", str(port),
                            "-U", ROLE, DATABASE), check=True, capture_output=True, cwd=root)
        try:
            yield f"postgresql://{ROLE}@127.0.0.1:{port}/{DATABASE}"
        finally:
            subprocess.run(_cmd(user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                "-w", "stop"), capture_output=True, cwd=root)
    except subprocess.CalledProcessError as exc:
        raise ServerUnavailable(
            f"{' '.join(exc.cmd[-6:])} failed: {(exc.stderr or b'').decode()[-300:].strip()}"
        ) from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    import time

    with throwaway_server() as url:
        print(url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
