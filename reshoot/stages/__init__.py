"""The stages, one module each, named as ``reshoot <stage>`` names them and run in this order.

ingest -> register -> reconstruct -> path -> guide -> refine -> export. Each stage is a ``run_<stage>(workspace,
config)`` over a :class:`reshoot.workspace.Workspace`: it reads the folders earlier stages wrote and writes its
own (docs/workspace.md). Stages import the core (``reshoot.cameras``, ``reshoot.splat``, ...) and earlier stages'
readers, never a front end (docs/architecture.md).
"""
