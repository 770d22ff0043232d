"""The transform core (LIAM Binary Algebra): numba-compiled ops on 3-D volumes.

Light on purpose: importing this package imports neither numba nor any op module. The ops
live in :mod:`clisonix_cli.transforms.ops`, one module each. Use
:func:`clisonix_cli.transforms.registry.all_ops` for the ops and
:class:`clisonix_cli.transforms.pipeline.Pipeline` to parse and run a pipeline.
"""
