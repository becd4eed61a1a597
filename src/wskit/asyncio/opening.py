"""The shape shared by :func:`~wskit.serve` and :func:`~wskit.connect`.

Both are used either as ``value = await serve(...)`` or as
``async with serve(...) as value:``, which also closes the value on exit.
"""

from __future__ import annotations

from collections.abc import Generator
from types import TracebackType
from typing import Any, Generic, TypeVar

__all__ = ["Opening"]

T = TypeVar("T")


class Opening(Generic[T]):
    """Awaitable and async context manager around ``_open()`` and ``_close()``."""

    _opened: T | None = None

    async def _open(self) -> T:
        """Open the server or connection."""
        raise NotImplementedError

    async def _close(self, value: T) -> None:
        """Close what ``_open()`` returned, when the ``async with`` block ends."""
        raise NotImplementedError

    def __await__(self) -> Generator[Any, Any, T]:
        return self._open().__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._opened is not None:
            await self._close(self._opened)
