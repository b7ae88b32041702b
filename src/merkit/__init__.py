"""merkit: micro-expression recognition and cross-database MER toolkit."""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
