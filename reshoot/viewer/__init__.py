"""``reshoot view``: the browser viewer of a workspace (viser), and the eval report's 3D view.

:mod:`.app` loads a workspace and runs the live viewer; :mod:`.core` turns scenes, rigs and paths into arrays
(no viser); :mod:`.scene` puts those arrays into a viser scene; :mod:`.path` edits the new camera;
:mod:`.report` writes the report's 3D view; :mod:`.net` picks the port and says how to reach it over SSH.
"""
