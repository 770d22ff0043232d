"""The transform ops: one module per op, each declaring ``OP``.

Every public module of this package is an op module; the registry
(:mod:`clisonix_cli.transforms.registry`) finds them with :mod:`pkgutil`. Modules whose
name starts with ``_`` hold kernels shared by several ops (index moves, interpolation,
separable filters, real values). Light on purpose: importing this package imports no op.
"""
