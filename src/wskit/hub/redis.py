"""Where the Redis backplane began; it lives in :mod:`wskit.hub.backplane.redis` now.

``from wskit.hub.redis import RedisBackplane`` keeps working; the theory of
operation is in the new package.
"""

from .backplane.redis import RedisBackplane

__all__ = ["RedisBackplane"]
