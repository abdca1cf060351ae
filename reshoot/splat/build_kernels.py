"""``python -m reshoot.splat.build_kernels [-v]``: build reshoot's compiled CPU kernels now (set-up runs it).

Silent when they are already built for this source, torch and CPU; says why and what to do when they cannot be
(see :mod:`reshoot.splat.kernels`). A module of its own because ``python -m reshoot.splat.kernels`` would run
that module a second time (reshoot's package imports it first).
"""

from reshoot.splat.kernels import main

if __name__ == "__main__":
    raise SystemExit(main())
