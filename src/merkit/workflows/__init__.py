"""End-to-end workflows behind the CLI that outgrew :mod:`merkit.pipeline` (one module each).

* :mod:`merkit.workflows.train` - deep models under a protocol (``merkit train``).
"""
