"""Build the optional compiled accelerators; everything else is in pyproject.toml.

``WSKIT_NO_EXTENSIONS=1 pip install .`` builds none, and a failed build
(no compiler) falls back to the pure-Python package.
"""

import os

from setuptools import Extension, setup

extensions = []
if not os.environ.get("WSKIT_NO_EXTENSIONS"):
    extensions.append(
        Extension(
            "wskit.speedups.mask",
            ["src/wskit/speedups/mask.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    )

setup(ext_modules=extensions)
