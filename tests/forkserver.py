"""``python -m diary_lightning`` in a subprocess, without paying for its imports every time.

About 150 tests run the CLI in a subprocess, as a user would, and each such process spent about 7 s of CPU importing
torch, transformers, PEFT, bitsandbytes and Lightning before doing a second of work: more than half of CI's CPU
time. Here one server per test process imports them once and forks a child for each such command; the child is a
real process (its own pid, signals, exit status, file descriptors, atexit handlers, the interpreter's own exit) that
runs ``diary_lightning.__main__`` as ``-m`` would, after taking the caller's arguments, working folder, environment
and standard streams.

The tests keep calling :mod:`subprocess`: :func:`install` routes a ``[sys.executable, "-m", "diary_lightning", ...]``
(or ``[sys.executable, tests/faults.py, ...]``) command here, through a :class:`subprocess.Popen` subclass whose
``_execute_child`` asks the server instead of exec'ing, and whose waits ask the server for the exit status
(a Python 3.10-3.13 internal, which is why this lives in the tests and not in the package). Every other command,
and one whose environment differs from the server's in what is read at import time (``TQDM_*``, ``HF_*``, ...) or
that would import another copy of the package, still gets a fresh interpreter. ``DIARY_TEST_FRESH_PYTHON=1`` turns
the routing off.

The server must never run a torch operation itself: a child forked after OpenMP's threads started could hang.
"""

from __future__ import annotations

import collections
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PACKAGE = ROOT / "diary_lightning"
FAULTS = TESTS / "faults.py"
OFF = "DIARY_TEST_FRESH_PYTHON"
# What the libraries read from the environment when they are imported, not when they run (tqdm's defaults, the
# Hub's offline switch and cache folders, Python's own start-up: stdio encoding, path): a child whose environment
# differs here from the server's would not behave as a fresh interpreter would. Not torch's or Lightning's own
# variables: they are read when things run (threads, devices, seeds), and set in the test process by the code the
# tests run in it (TORCHINDUCTOR_CACHE_DIR, PYTORCH_NVML_BASED_CUDA_CHECK, PL_GLOBAL_SEED), which would otherwise
# turn routing off for the rest of a session.
IMPORT_TIME = ("TQDM_", "HF_", "HUGGINGFACE", "TRANSFORMERS_", "BNB_", "BITSANDBYTES", "XDG_", "HOME", "LANG", "LC_",
               "PYTHON")
# Read only when things run, or never offline.
RUN_TIME = {"PYTHONPATH", "HF_HUB_DISABLE_TELEMETRY"}
MESSAGE_LIMIT = 1 << 20


def _import_environment(env: dict[str, str]) -> dict[str, str]:
    seen = {k: v for k, v in env.items() if k.startswith(IMPORT_TIME) and k not in RUN_TIME}
    seen.setdefault("TQDM_DELAY", "2")  # what diary_lightning.__main__ sets before anything imports tqdm
    return seen


# -- the server -----------------------------------------------------------------------------------------------


def _serve(address: str) -> None:
    from diary_lightning.__main__ import delay_progress_bars

    delay_progress_bars()
    del sys.modules["diary_lightning.__main__"]  # each child runs it afresh, as ``-m`` does
    import bitsandbytes  # noqa: F401
    import lightning  # noqa: F401
    import peft  # noqa: F401
    import transformers  # noqa: F401

    import diary_lightning.cli.commands  # noqa: F401
    import diary_lightning.cli.preflight  # noqa: F401

    if FAULTS.exists():
        sys.path.insert(0, str(TESTS))
        import faults  # noqa: F401

        sys.path.remove(str(TESTS))
    # What the imports made stays out of every child's collections: they would walk (and, touching each object,
    # copy) the whole heap the server built. Python's documented advice before forking workers.
    import gc

    gc.collect()
    gc.freeze()
    own_path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    base_path = [p for p in sys.path[1:] if p not in own_path]
    parent = os.getppid()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    waiting: dict[int, socket.socket] = {}  # child pid -> the caller's connection, told its exit status
    sys.stdout.flush()
    print("ready", flush=True)
    while os.getppid() == parent:
        readable, _, _ = select.select([listener], [], [], 0.05)
        if readable:
            connection, _ = listener.accept()
            request, fds = _receive(connection)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in waiting.values():
                    other.close()
                _become_command(connection, request, fds, base_path)  # never returns
            for fd in fds:
                os.close(fd)
            connection.sendall(f"{pid}\n".encode())
            waiting[pid] = connection
        while waiting:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                break
            print(f"{pid} exit {os.waitstatus_to_exitcode(status)} cpu {usage.ru_utime + usage.ru_stime:.2f} s user {usage.ru_utime:.2f} sys {usage.ru_stime:.2f}",
                  file=sys.stderr, flush=True)
            connection = waiting.pop(pid, None)
            if connection is not None:
                try:
                    connection.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass  # the caller is gone
                connection.close()


def _receive(connection: socket.socket) -> tuple[dict[str, Any], list[int]]:
    data, fds, _, _ = socket.recv_fds(connection, MESSAGE_LIMIT, 3)
    while not data.endswith(b"\n"):
        more = connection.recv(MESSAGE_LIMIT)
        if not more:
            break
        data += more
    return json.loads(data), list(fds)


def _become_command(connection: socket.socket, request: dict[str, Any], fds: list[int], base_path: list[str]) -> None:
    """In the forked child: take the caller's streams, folder, environment and arguments, then run the command
    and leave through the interpreter's own exit (threads joined, atexit handlers run, streams flushed)."""
    import random

    connection.close()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # A fresh interpreter draws its seeds from the system; forked children would otherwise all share the server's.
    random.seed()
    import numpy

    numpy.random.seed()
    argv = request["argv"]
    extra = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    if argv[0] == "-m":
        sys.path[:] = [os.getcwd(), *extra, *base_path]
        sys.argv = ["diary_lightning", *argv[2:]]
        import runpy

        runpy.run_module("diary_lightning", run_name="__main__", alter_sys=True)
    else:
        script = os.path.abspath(argv[0])
        sys.path[:] = [os.path.dirname(script), *extra, *base_path]
        sys.argv = [argv[0], *argv[1:]]
        import runpy

        runpy.run_path(script, run_name="__main__")
    raise SystemExit(0)


# -- the caller's side ----------------------------------------------------------------------------------------


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.folder = tempfile.mkdtemp(prefix="diary-forkserver-")
        self.address = os.path.join(self.folder, "socket")
        self.log = open(os.path.join(self.folder, "log"), "w")
        self.process = _RealPopen([sys.executable, str(Path(__file__)), self.address], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"the fork server did not start: {Path(self.folder, 'log').read_text()[-3000:]}")

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_server: _Server | None = None
_environment: dict[str, str] = {}  # the process's own at install(): the server imports under it
_lock = threading.Lock()
_RealPopen = subprocess.Popen
fresh_because: str = ""
"""Why the last command that asked was given a fresh interpreter, for the tests of this module."""
counts: collections.Counter[str] = collections.Counter()
"""CLI commands forked, and those given a fresh interpreter by reason (tests/conftest.py prints them)."""


def _server_for(argv: list[str], env: dict[str, str], cwd: str) -> _Server | None:
    """The server, started on first use, if this command may run in a child of it."""
    global _server, fresh_because
    if os.environ.get(OFF) or env.get(OFF):
        fresh_because = f"{OFF} is set"
        return None
    # Another copy of the package first on the child's path: only a fresh interpreter would import it.
    roots = [cwd] if argv[0] == "-m" else [os.path.dirname(os.path.abspath(argv[0]))]
    for entry in roots + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]:
        candidate = Path(entry, "diary_lightning")
        if candidate.is_dir() and candidate.resolve() != PACKAGE:
            fresh_because = f"another copy of the package: {candidate}"
            return None
    # Compared before the server starts: one started under a test's passing change would fail every later command.
    asked, served = _import_environment(env), _import_environment(_environment)
    differs = sorted(k for k in asked.keys() | served.keys() if asked.get(k) != served.get(k))
    if differs:
        fresh_because = f"read at import, and not as the server has it: {', '.join(differs)}"
        return None
    with _lock:
        if _server is None:
            _server = _Server(_environment)
    return _server


def _routed(args: Any, kwargs: dict[str, Any]) -> list[str] | None:
    """The arguments after the interpreter, if ``args`` is this interpreter running the CLI plainly."""
    if not isinstance(args, (list, tuple)) or len(args) < 2 or kwargs.get("shell") or kwargs.get("executable"):
        return None
    if kwargs.get("umask", -1) != -1 or any(kwargs.get(k) for k in ("preexec_fn", "pass_fds", "start_new_session",
                                                                      "process_group", "user", "group", "extra_groups")):
        return None
    argv = [os.fspath(a) for a in args]
    if os.path.realpath(argv[0]) != os.path.realpath(sys.executable) and argv[0] != sys.executable:
        return None
    if argv[1:3] == ["-m", "diary_lightning"]:
        return argv[1:]
    if os.path.abspath(argv[1]) == str(FAULTS):
        return argv[1:]
    return None


class ForkedPopen(_RealPopen):
    """A :class:`subprocess.Popen` whose child is forked by the server instead of exec'd."""

    def __init__(self, args: Any, *rest: Any, server: _Server, **kwargs: Any) -> None:
        self._server = server
        self._control: socket.socket | None = None
        self._pending = b""
        super().__init__(args, *rest, **kwargs)

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env, startupinfo,
                       creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, *rest) -> None:
        argv = [os.fspath(a) for a in args][1:]
        env = dict(os.environ if env is None else {os.fsdecode(k): os.fsdecode(v) for k, v in env.items()})
        cwd = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
        fds = [p2cread if p2cread != -1 else 0, c2pwrite if c2pwrite != -1 else 1, errwrite if errwrite != -1 else 2]
        try:
            control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            control.connect(self._server.address)
            message = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
            socket.send_fds(control, [message[:MESSAGE_LIMIT]], fds)
            if len(message) > MESSAGE_LIMIT:
                control.sendall(message[MESSAGE_LIMIT:])
            self._control = control
            self.pid = int(self._read_line(None))
            self._child_created = True
        finally:
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    def _read_line(self, timeout: float | None) -> str | None:
        assert self._control is not None
        while b"\n" not in self._pending:
            if timeout is not None and not select.select([self._control], [], [], max(timeout, 0))[0]:
                return None
            chunk = self._control.recv(64)
            if not chunk:
                raise RuntimeError("the fork server went away")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def _internal_poll(self, _deadstate=None, *args: Any, **kwargs: Any) -> int | None:
        if self.returncode is None and self._control is not None:
            try:
                line = self._read_line(0)
            except (OSError, RuntimeError):
                if _deadstate is not None:
                    self.returncode = _deadstate
                return self.returncode
            if line is not None:
                self._finish(int(line))
        return self.returncode

    def _wait(self, timeout: float | None) -> int:
        if self.returncode is None:
            line = self._read_line(timeout)
            if line is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._finish(int(line))
        return self.returncode

    def _finish(self, returncode: int) -> None:
        self.returncode = returncode
        self._control.close()


def _popen(args: Any, *rest: Any, **kwargs: Any) -> subprocess.Popen:
    argv = None if rest else _routed(args, kwargs)
    if argv is not None:
        env = kwargs.get("env")
        cwd = kwargs.get("cwd")
        server = _server_for(argv, dict(os.environ if env is None else env), os.path.abspath(os.fspath(cwd or ".")))
        if server is not None:
            counts["forked"] += 1
            return ForkedPopen(args, server=server, **kwargs)
        counts[f"fresh: {fresh_because.split(':')[0]}"] += 1
    return _RealPopen(args, *rest, **kwargs)


def install() -> None:
    """Route this process's CLI subprocesses through the server (see the module's docstring), which will import
    under this process's environment as it is now."""
    _environment.clear()
    _environment.update(os.environ)
    subprocess.Popen = _popen  # subprocess.run and friends look it up at call time


def shutdown() -> None:
    global _server
    subprocess.Popen = _RealPopen
    if _server is not None:
        _server.close()
        _server = None


if __name__ == "__main__":
    _serve(sys.argv[1])
