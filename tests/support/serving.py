"""A ``multistyle serve`` process for the tests: started on a free port, its URL read from its first line,
stopped with SIGINT as Ctrl-C stops it."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from support.cli import ctrl_c_reaches_it


class Served:
    """A running server: ``url``, ``port``, and helpers that talk to it."""

    def __init__(self, args: List[str], scratch: Path) -> None:
        self.scratch = scratch
        self.tmp = scratch / "server-tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, TMPDIR=str(self.tmp), PYTHONUNBUFFERED="1")
        # From the user's folder, not the repository's: there `python -m multistyle` would find the source
        # folder ./multistyle, which lacks what is mapped into the package at install time (backends, examples).
        # A session of its own, with Ctrl-C's default action (a shell's background job would ignore it), so
        # that stop(group=True) signals the server and its workers together, as Ctrl-C in a terminal does.
        self.process = subprocess.Popen([sys.executable, "-m", "multistyle", "serve", "--port", "0", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                                        cwd=scratch, start_new_session=True,
                                        preexec_fn=ctrl_c_reaches_it)
        line = self.process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not match:
            self.process.kill()
            raise AssertionError(f"no URL from multistyle serve: {line!r} {self.process.stderr.read()[-2000:]}")
        self.port = int(match.group(1))
        self.url = match.group(0)

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> Tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            answer = connection.getresponse()
            return answer.status, answer.read()
        finally:
            connection.close()

    def json(self, method: str, path: str, data: Any = None) -> Tuple[int, Any]:
        body = None if data is None else json.dumps(data).encode()
        status, raw = self.request(method, path, body, {"Content-Type": "application/json"})
        return status, json.loads(raw) if raw else None

    def state(self) -> Dict[str, Any]:
        return self.json("GET", "/api/state")[1]

    def wait(self, predicate, timeout: float = 120.0, what: str = "") -> Dict[str, Any]:
        """Poll the state (the tests may; the page does not) until ``predicate(state)``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if predicate(state):
                return state
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}: {json.dumps(self.state())[:2000]}")

    def stop(self, group: bool = False) -> Tuple[int, str]:
        """SIGINT to the server (or, ``group``, to its whole process group: Ctrl-C in a terminal); the exit
        status and stderr."""
        if self.process.poll() is None:
            if group:
                os.killpg(self.process.pid, signal.SIGINT)
            else:
                self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
