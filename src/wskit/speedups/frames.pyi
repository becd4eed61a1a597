def apply_mask(data: bytes | bytearray | memoryview, mask: bytes | bytearray) -> bytes: ...
def parse_simple(
    buf: bytes | bytearray,
    pos: int,
    expect_mask: int,
    max_size: int,
    events: list[object],
    event_type: type[tuple[object, ...]],
) -> int: ...
