from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

class Writer:
    transport: Any
    fd: int
    open: bool
    plain: bool
    busy: bool
    def __init__(self, transport: Any, fd: int, plain: bool, check_closing: bool) -> None: ...
    def write(self, data: bytes | bytearray | memoryview) -> bool: ...
    def write_parts(self, parts: list[bytes]) -> bool: ...
    def detach(self) -> None: ...

def fanout(
    items: Mapping[T, Any] | Iterable[T], frame: bytes, max_buffer: int, skip: object
) -> tuple[int, list[T]]: ...
