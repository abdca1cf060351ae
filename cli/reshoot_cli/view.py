"""``reshoot view``: the workspace in a web browser (reshoot.viewer.app, on viser)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ViewCommand:
    """View: show a workspace in a web browser until Ctrl-C: the splat scene at any instant of the shot (a time
    slider, play), the set cameras showing what each filmed then, the sparse points and the new camera's path; place
    the new camera (a gizmo, its lens, keys at frames, a preview with the guide's confidence map) and Save it as the
    path stage (WS/path, as `reshoot path` writes it). Needs a finished reconstruct; writes the workspace only on
    Save."""

    workspace: Path = Path("reshoot-workspace")
    """The workspace folder, with a finished reconstruct stage."""
    host: str = "127.0.0.1"
    """Address to listen on: 127.0.0.1 (this machine only; from another computer, open it through an SSH tunnel)
    or 0.0.0.0 (every network interface: anyone who can reach this machine can open it)."""
    port: int = 8080
    """Port to listen on. A port in use is an error, not silently replaced: pick another with --port."""
    open: bool = True
    """Open the page in this machine's web browser (only where there is a desktop, never over SSH)."""

    def run(self) -> None:
        from reshoot.viewer.app import serve

        serve(self.workspace, host=self.host, port=self.port, open_browser=self.open)
