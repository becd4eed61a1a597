"""Build the optional compiled accelerators; everything else is in pyproject.toml.

The kernels (``src/wskit/speedups/``), and where they are built:

- ``frames`` (masking, the parser's common case): C99 and the CPython API
  only, so every platform builds it.
- ``write`` (direct socket writes, fan-out): ``send()``/``sendmsg()`` with
  ``MSG_NOSIGNAL`` and ``<sys/uio.h>``, so Linux only. macOS has no
  ``MSG_NOSIGNAL`` (it has the per-socket ``SO_NOSIGPIPE`` instead, which
  wskit does not set on sockets asyncio owns), and Windows has neither
  ``sendmsg`` nor ``<sys/uio.h>``; there the pure-Python writer serves
  (``wskit.speedups.write_kernel`` is None).

Environment, at build time:

- ``WSKIT_NO_EXTENSIONS=1`` builds none: the pure-Python ``py3-none-any`` wheel.
- ``WSKIT_REQUIRE_EXTENSIONS=1`` makes a kernel that does not compile fail the
  build; release builds (``make dist``, cibuildwheel) set it. Without it a
  failed compile (no compiler) leaves that kernel out and the pure-Python code
  serves, with a warning in the build log.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def kernels() -> list[str]:
    """The kernels this platform can build."""
    if sys.platform.startswith("linux"):
        return ["frames", "write"]
    return ["frames"]


class BuildExt(build_ext):
    """Optimise with the flag of the compiler in use (gcc/clang or MSVC)."""

    def build_extension(self, ext: Extension) -> None:
        flag = "/O2" if self.compiler.compiler_type == "msvc" else "-O3"
        ext.extra_compile_args = [*ext.extra_compile_args, flag]
        super().build_extension(ext)


no_extensions = bool(os.environ.get("WSKIT_NO_EXTENSIONS"))
require_extensions = bool(os.environ.get("WSKIT_REQUIRE_EXTENSIONS"))
if no_extensions and require_extensions:
    sys.exit("setup.py: WSKIT_NO_EXTENSIONS and WSKIT_REQUIRE_EXTENSIONS contradict each other")

extensions = []
if not no_extensions:
    extensions = [
        Extension(
            f"wskit.speedups.{name}",
            [f"src/wskit/speedups/{name}.c"],
            optional=not require_extensions,
        )
        for name in kernels()
    ]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
