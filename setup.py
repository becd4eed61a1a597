"""Build the optional compiled accelerators; everything else is in pyproject.toml.

``WSKIT_NO_EXTENSIONS=1 pip install .`` builds none, and a failed build
(no compiler) falls back to the pure-Python package.
"""

import os

from setuptools import Extension, setup

KERNELS = ("frames", "write")

extensions = []
if not os.environ.get("WSKIT_NO_EXTENSIONS"):
    extensions = [
        Extension(
            f"wskit.speedups.{name}",
            [f"src/wskit/speedups/{name}.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
        for name in KERNELS
    ]

setup(ext_modules=extensions)
