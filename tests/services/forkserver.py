"""Start ``python -m cli.main ...`` processes for the tests without paying their imports.

The suite starts a few hundred ``moorage api`` and ``moorage worker`` processes, and each
spends about four seconds of CPU importing the same modules before it does anything. A
fork server imports them once per pytest process (``python -m tests.services.forkserver
SOCKET``), then forks a child for each command it is asked to run; the child takes the
command's environment, working directory, arguments and log file and runs ``cli.main`` as
its ``__main__`` module, exactly as ``python -m cli.main`` would, so the command's own code
(settings, logging, servers, signal handlers, shutdown) is what runs. The crash tests' worker
with a stalling activity (``python -m tests.services.faulty_worker``, built as ``moorage
worker`` is) is forked the same way. The server also builds the API's framework and
freezes its start-up heap, as ``moorage api`` does before its server forks the workers.

What differs from a fresh interpreter, and why it does not matter here:

* the modules were imported under the server's environment, not the command's. Nothing
  Moorage imports reads its settings at import time (settings are loaded when a command
  runs); the one library that does (prometheus-client's value class) is picked again by
  the API when it runs in multi-process mode;
* interpreter options set by environment variables are not read again: only
  ``PYTHONUNBUFFERED`` (re-applied to the standard streams) and
  ``PYTHONDONTWRITEBYTECODE`` are accepted; a command with any other ``PYTHON*`` variable,
  another working tree, another user or a wrapper command is started the ordinary way;
* the child's parent is the fork server, so it is reaped there: :class:`ForkedProcess`
  asks the server for the exit status, and otherwise acts as :class:`subprocess.Popen`
  does for what the tests use (``pid``, ``args``, ``poll``, ``wait``, ``send_signal``,
  ``kill``, ``terminate``, ``returncode``).

The server refuses to serve (and the tests fall back to ``subprocess.Popen``) if its
imports started a thread: forking a process with other threads is not safe. Only the test
session turns it on (:func:`enable`, from ``tests/conftest.py``): the benchmarks, which start
their servers with the same helpers, start them as new processes, as users do.
``MOORAGE_TEST_FORKSERVER=0`` turns it off for the tests too.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import io
import json
import os
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

_T = TypeVar("_T")

#: The commands' module (``python -m cli.main``).
MODULE: Final = "cli.main"
#: Modules whose ``python -m`` commands are forked: the commands, and the worker the crash
#: tests run with one activity made to stall (it builds the worker as ``moorage worker``).
FORKED_MODULES: Final = frozenset({MODULE, "tests.services.faulty_worker"})
#: Modules imported before the first fork: what ``moorage api`` and ``moorage worker`` load.
PRELOAD: Final = ("cli.main", "cli.api", "cli.asgi", "cli.worker_process")
#: ``PYTHON*`` variables a forked command may carry (anything else needs a fresh interpreter).
ACCEPTED_PYTHON_VARIABLES: Final = frozenset({"PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
SWITCH: Final = "MOORAGE_TEST_FORKSERVER"
READY_TIMEOUT: Final = 120.0
REQUEST_TIMEOUT: Final = 30.0
_REPO_ROOT: Final = Path(__file__).resolve().parents[2]
#: Where a pytest process records that its fork server failed (kept after the run).
FAILURES: Final = Path(tempfile.gettempdir()) / "moorage-forkserver-failures.log"


# --- the server ---------------------------------------------------------------------------


def _single_threaded() -> bool:
    return threading.active_count() == 1 and sum(1 for _ in Path("/proc/self/task").iterdir()) == 1


def _standard_streams(unbuffered: bool) -> None:
    """New ``sys.stdout`` and ``sys.stderr`` on descriptors 1 and 2 (the command's log)."""
    for fd, name, errors in ((1, "stdout", "strict"), (2, "stderr", "backslashreplace")):
        raw = io.FileIO(fd, "w", closefd=False)
        binary: Any = raw if unbuffered else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(
            binary,
            encoding="utf-8",
            errors=errors,
            line_buffering=name == "stderr" and not unbuffered,
            write_through=unbuffered,
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _standard_descriptors(request: Mapping[str, Any], fds: Sequence[int]) -> None:
    """Descriptors 0, 1 and 2: the three passed with the request, or null and the log."""
    if not fds:
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fds = (null, log, log)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds):
        if fd > 2:
            os.close(fd)


def _run_child(request: Mapping[str, Any], fds: Sequence[int]) -> int:
    """Become the command of ``request`` (in the forked child); its exit status."""
    import runpy

    os.setsid()
    _standard_descriptors(request, fds)
    env: dict[str, str] = request["env"]
    os.environ.clear()
    os.environ.update(env)
    os.chdir(request["cwd"])
    _standard_streams(bool(env.get("PYTHONUNBUFFERED")))
    module = str(request["module"])
    # NOTE: as under ``python -m``, the module runs as ``__main__`` only; an import of it by
    # name makes a second copy (and runpy warns when it finds the name taken)
    sys.modules.pop(module, None)
    sys.argv = [module, *request["args"]]
    code = 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    return code


def _exit_child(code: int) -> None:
    """End the child as the interpreter ends a process: threads joined, exit handlers run."""
    with contextlib.suppress(BaseException):
        threading._shutdown()  # type: ignore[attr-defined]
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


class _Server:
    """Forks commands and keeps their exit statuses (one request per connection)."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.exited: dict[int, int] = {}
        self.children: set[int] = set()

    def serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            with connection:
                fds: list[int] = []
                try:
                    line, fds = _receive(connection)
                    reply = self.handle(json.loads(line), connection, fds)
                except Exception as exc:
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                finally:
                    for fd in fds:  # the child has its copies; the pipes must end with it
                        os.close(fd)
                with contextlib.suppress(OSError):
                    connection.sendall(json.dumps(reply).encode() + b"\n")

    def handle(
        self, request: Mapping[str, Any], connection: socket.socket, fds: Sequence[int]
    ) -> dict[str, Any]:
        op = request["op"]
        if op == "spawn":
            if len(fds) not in (0, 3):
                return {"error": f"expected 0 or 3 descriptors, got {len(fds)}"}
            return {"pid": self.spawn(request, connection, fds)}
        if op == "poll":
            return {"returncode": self.poll(int(request["pid"]))}
        return {"error": f"unknown operation {op!r}"}

    def spawn(
        self, request: Mapping[str, Any], connection: socket.socket, fds: Sequence[int]
    ) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the command
            code = 1
            try:
                connection.close()
                self.listener.close()
                code = _run_child(request, fds)
            finally:
                _exit_child(code)
        self.children.add(pid)
        return pid

    def poll(self, pid: int) -> int | None:
        if pid in self.exited:
            return self.exited[pid]
        if pid not in self.children:
            return None
        done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            return None
        self.children.discard(pid)
        self.exited[pid] = os.waitstatus_to_exitcode(status)  # as Popen.returncode
        return self.exited[pid]


def _receive(connection: socket.socket) -> tuple[bytes, list[int]]:
    """A request line and the descriptors sent with its first part."""
    first, fds, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    if first.endswith(b"\n"):
        return first, fds
    return first + _read_line(connection), fds


def _read_line(connection: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = connection.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def serve(path: str) -> int:
    """Import the commands' modules, then fork a command for each request on ``path``."""
    from cli.logs import quiet_native_grpc

    quiet_native_grpc()
    for module in PRELOAD:
        importlib.import_module(module)
    from cli.asgi import prebuild_framework

    prebuild_framework()  # NOTE: as ``moorage api`` does; its forked workers take it
    if not _single_threaded():
        print("the imports started a thread: not forking from here", file=sys.stderr)
        return 3
    from cli.heap import freeze_startup_heap

    freeze_startup_heap()  # NOTE: as the commands do once built; their children inherit it
    server = _Server(path)
    print("ready", flush=True)
    server.serve()
    return 0


# --- the client ---------------------------------------------------------------------------


class ForkServerError(RuntimeError):
    """The fork server could not be started or did not answer."""


class ForkServer:
    """One fork server process, started by this (pytest) process and stopped at its exit."""

    def __init__(self) -> None:
        from tests.services.process import spawn  # NOTE: late, it imports this module

        self._dir = tempfile.mkdtemp(prefix="moorage-forkserver-")
        self.path = str(Path(self._dir) / "socket")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MOORAGE_")}
        self._log = Path(self._dir) / "server.log"
        argv = [sys.executable, "-m", "tests.services.forkserver", self.path]
        self.process = spawn("fork server", argv, log_path=self._log, env=env, cwd=_REPO_ROOT)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._log.read_text(errors="replace").startswith("ready"):
            if self.process.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ForkServerError(f"the fork server did not start: {self._log.read_text()}")
            time.sleep(0.05)

    def request(self, message: Mapping[str, Any], fds: Sequence[int] = ()) -> dict[str, Any]:
        """Send ``message`` (and ``fds``, the command's standard descriptors); the reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(REQUEST_TIMEOUT)
            try:
                connection.connect(self.path)
                data = json.dumps(message).encode() + b"\n"
                sent = socket.send_fds(connection, [data], list(fds)) if fds else 0
                if sent < len(data):
                    # NOTE: never an empty send: the server may have answered and closed
                    # already, and a send of nothing to a closed peer fails (EPIPE)
                    connection.sendall(data[sent:])
                reply: dict[str, Any] = json.loads(_read_line(connection))
            except (OSError, ValueError) as exc:
                alive = "running" if self.process.popen.poll() is None else "exited"
                raise ForkServerError(
                    f"the fork server ({alive}) did not answer {message['op']}: {exc!r}; "
                    f"{self._log}:\n{self._log.read_text(errors='replace')[-2000:]}"
                ) from exc
        if "error" in reply:
            raise ForkServerError(str(reply["error"]))
        return reply

    def spawn(
        self,
        module: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> ForkedProcess:
        """Run ``python -m MODULE ARGS`` forked; output appended to ``log_path``."""
        log_path.touch()  # there when this returns, as with a Popen writing into it
        return self._fork(module, args, env, cwd, {"log": str(log_path)})

    def _fork(
        self,
        module: str,
        args: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
        stdio: Mapping[str, str],
        fds: Sequence[int] = (),
    ) -> ForkedProcess:
        """Ask for a fork of ``python -m MODULE ARGS`` (its log in ``stdio``, or ``fds``)."""
        message = {"op": "spawn", "module": module, "args": list(args), "env": dict(env),
                   "cwd": str(cwd), **stdio}  # fmt: skip
        reply = self.request(message, fds)
        return ForkedProcess(self, int(reply["pid"]), [sys.executable, "-m", module, *args])

    def run(
        self,
        module: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        timeout: float,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``subprocess.run`` of ``python -m MODULE ARGS`` with its output captured as text.

        ``input_text`` is written to the command's standard input before its output is
        read, so it must fit in a pipe's buffer (64 KiB); the tests' inputs are small.

        Raises:
            subprocess.TimeoutExpired: The command ran longer than ``timeout`` (it is killed).
        """
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            process = self._fork(module, args, env, cwd, {}, (stdin_r, stdout_w, stderr_w))
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
        deadline = time.monotonic() + timeout
        with os.fdopen(stdin_w, "wb", buffering=0) as stdin, contextlib.suppress(BrokenPipeError):
            stdin.write((input_text or "").encode())
        output = _read_until_closed((stdout_r, stderr_r), deadline)
        if output is None:
            process.kill()
            process.wait(timeout=30)
            raise subprocess.TimeoutExpired(process.args, timeout)
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        stdout, stderr = (data.decode(errors="replace") for data in output)
        return subprocess.CompletedProcess(process.args, code, stdout, stderr)

    def stop(self) -> None:
        """Stop the server (its PID only); commands still running are left to their owners."""
        self.process.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _read_until_closed(fds: Sequence[int], deadline: float) -> list[bytes] | None:
    """Everything read from ``fds`` until each is closed (``None``: past ``deadline``).

    The descriptors are closed on return.
    """
    data = {fd: bytearray() for fd in fds}
    with selectors.DefaultSelector() as selector:
        for fd in fds:
            selector.register(fd, selectors.EVENT_READ)
        try:
            while selector.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                for key, _ in selector.select(left):
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        data[key.fd] += chunk
                    else:
                        selector.unregister(key.fd)
        finally:
            for fd in fds:
                os.close(fd)
    return [bytes(data[fd]) for fd in fds]


class ForkedProcess:
    """A command forked by the :class:`ForkServer`, used like :class:`subprocess.Popen`."""

    def __init__(self, server: ForkServer, pid: int, args: list[str]) -> None:
        self._server = server
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status if the command has ended (negative: the signal that ended it)."""
        if self.returncode is None:
            code = self._server.request({"op": "poll", "pid": self.pid})["returncode"]
            self.returncode = None if code is None else int(code)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the command to end; :class:`subprocess.TimeoutExpired` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        code = self.poll()
        if code is not None:
            return code
        # NOTE: the server reaps only when asked, so the PID is still this command's
        handle = os.pidfd_open(self.pid)
        try:
            while (code := self.poll()) is None:
                left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if left <= 0:
                    raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
                select.select([handle], [], [], left)  # readable once the command has ended
            return code
        finally:
            os.close(handle)

    def send_signal(self, sig: int) -> None:
        """Signal the command unless it has already ended (its PID only)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        """``SIGTERM``."""
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """``SIGKILL``."""
        self.send_signal(signal.SIGKILL)


_server: ForkServer | None = None
_failed = False
_enabled = False
_lock = threading.Lock()


def _stop_server() -> None:
    if _server is not None:
        _server.stop()


def enable() -> None:
    """Fork this process's commands from now on (unless ``MOORAGE_TEST_FORKSERVER=0``)."""
    global _enabled  # noqa: PLW0603 - one switch per process
    _enabled = os.environ.get(SWITCH, "1") != "0"


def forkable(argv: Sequence[str], env: Mapping[str, str], cwd: Path | None) -> bool:
    """Whether ``argv`` may be forked: enabled, ``python -m`` of :data:`FORKED_MODULES`,
    this tree, plain."""
    if not _enabled or _failed:
        return False
    if list(argv[:2]) != [sys.executable, "-m"] or len(argv) < 3 or argv[2] not in FORKED_MODULES:
        return False
    if cwd is not None and Path(cwd).resolve() != _REPO_ROOT:
        return False
    return all(name in ACCEPTED_PYTHON_VARIABLES for name in env if name.startswith("PYTHON"))


def _forked(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path | None,
    ask: Callable[[ForkServer, str, Sequence[str], Path], _T],
) -> _T | None:
    """``ask(server, module, args, cwd)`` if ``argv`` may be forked; ``None``: start it anew."""
    server = fork_server() if forkable(argv, env, cwd) else None
    if server is None:
        return None
    try:
        return ask(server, argv[2], argv[3:], cwd or Path.cwd())
    except ForkServerError as exc:
        given_up(exc)
        return None


def spawn_forked(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path | None, log_path: Path
) -> ForkedProcess | None:
    """``argv`` forked with its output appended to ``log_path``; ``None``: start it anew."""
    return _forked(
        argv, env, cwd,
        lambda server, module, args, at: server.spawn(
            module, args, env=env, cwd=at, log_path=log_path
        ),
    )  # fmt: skip


def run_captured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(argv, capture_output=True, text=True, check=False)``, forked if it can be.

    Raises:
        subprocess.TimeoutExpired: The command ran longer than ``timeout`` (it is killed).
    """
    command_env = dict(os.environ if env is None else env)
    done = _forked(
        argv, command_env, cwd,
        lambda server, module, args, at: server.run(
            module, args, env=command_env, cwd=at, timeout=timeout, input_text=input_text
        ),
    )  # fmt: skip
    if done is not None:
        return done
    return subprocess.run(
            list(argv), input=input_text, capture_output=True, text=True, env=command_env,
            cwd=cwd, timeout=timeout, check=False,
        )  # fmt: skip


def given_up(error: ForkServerError) -> None:
    """Start commands as new processes from now on: the server failed with ``error``."""
    global _failed  # noqa: PLW0603 - one server per pytest process
    _failed = True
    message = f"fork server failed, commands start as new processes: {error}"
    print(message, file=sys.stderr)
    with FAILURES.open("a", encoding="utf-8") as record:
        record.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} pid {os.getpid()}: {message}\n")


def fork_server() -> ForkServer | None:
    """This process's fork server, started on first use (``None``: it could not start)."""
    global _server  # noqa: PLW0603 - one server per pytest process
    with _lock:
        if _server is None and not _failed:
            try:
                _server = ForkServer()
            except ForkServerError as exc:
                given_up(exc)
                return None
            atexit.register(_stop_server)
        return _server


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1]))
