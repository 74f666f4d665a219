"""The parser's compiled fast path (fleetcore/protocol/_fastparse.c), declared with setuptools' stable API; everything else about
the package is in pyproject.toml.

Optional: without a C compiler the install still succeeds and fleetcore.protocol.parse runs its Python code for every message
(the worker then needs about twice the CPU per message); tests/test_fastparse.py fails if the module was not built.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "fleetcore.protocol._fastparse",
            ["fleetcore/protocol/_fastparse.c"],
            extra_compile_args=["-O2", "-ffp-contract=off"],
            optional=True,
        )
    ]
)
