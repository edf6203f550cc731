"""Run a simulator as a child process that dies with its parent (the daemon's demo, tests).

A separate process keeps the simulated broker's CPU off the daemon's event loop and lets it outlive
nothing: PR_SET_PDEATHSIG makes the kernel end it if the daemon is killed, even by SIGKILL.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
from pathlib import Path

from engine.sim.config import SimSettings

_PR_SET_PDEATHSIG = 1
START_TIMEOUT_SECONDS = 60.0


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class SimProcess:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    @classmethod
    def start(cls, settings: SimSettings, state_dir: Path, port: int = 0) -> SimProcess:
        """Start `trademaster sim` with `settings`, state in `state_dir`; returns once it listens."""
        state_dir.mkdir(parents=True, exist_ok=True)
        config = state_dir / "sim.json"
        config.write_text(settings.model_dump_json(indent=2), encoding="utf-8")
        log = (state_dir / "sim.log").open("a", encoding="utf-8")
        command = [sys.executable, "-m", "clients.cli", "sim", "--config", str(config)]
        command += ["--state-dir", str(state_dir), "--port", str(port)]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=_die_with_parent
        )
        log.close()
        assert process.stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT_SECONDS)
        if not line or " listening on " not in line[0]:
            process.kill()
            raise RuntimeError(f"{settings.broker} simulator did not start; see {state_dir / 'sim.log'}")
        return cls(process, line[0].rsplit(" listening on ", 1)[1].strip())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
