"""grokmon: train grokking transformers on modular arithmetic and watch them generalise.

The package root only names the version; import the submodules for the real work.
"""

__version__ = "0.1.0"
