"""Where the viewer listens and how people reach it: the port check, the address to print, SSH and desktop
detection. Kept apart from :mod:`reshoot.viewer.app`, which draws the workspace; nothing here knows of viser."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import sys
from typing import Iterator

from reshoot.workspace import StageError


class ViewerError(StageError):
    """The viewer cannot start as asked (no scene in the workspace, the port is taken); the message says what to do.

    A :class:`~reshoot.workspace.StageError`, so the CLI prints it without a traceback."""


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on, as viser's server would find it (SO_REUSEADDR, as asyncio sets
    on POSIX), before viser quietly takes the next free port instead. Port 0 (any free port) always passes."""
    if port == 0:
        return
    try:
        addresses = {info[4][:2]: info[0] for info in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                                        flags=socket.AI_PASSIVE)}
    except socket.gaierror as exc:
        raise ViewerError(f"cannot listen on host {host!r} ({exc}); give an address of this machine with --host, "
                          "e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)") from None
    for address, family in addresses.items():
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            if os.name == "posix":
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
                    raise ViewerError(port_taken(host, port)) from None
                raise ViewerError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --host or "
                                  "--port") from None


def port_taken(host: str, port: int) -> str:
    return (f"port {port} on {host} is already in use (another viewer, or another program); start the viewer on "
            f"another port with --port, e.g. --port {port + 1}")


def display_host(host: str) -> str:
    """The host to put in the address people open: this machine's name when listening on every interface."""
    return socket.getfqdn() if host in ("0.0.0.0", "::", "") else host


def over_ssh() -> bool:
    return bool(os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_CLIENT"))


def has_desktop() -> bool:
    """Whether a graphical browser can open here (without one, Python's webbrowser starts a text browser in the
    terminal)."""
    if over_ssh():
        return False
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Hide what viser prints (its address panel, "Server stopped"): the viewer says where to go in one line."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
