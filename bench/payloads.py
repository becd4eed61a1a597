"""B5's payload: compressible JSON documents of about 4 KiB.

Each document is a page of user records, as an API or a live feed would send;
documents differ in their values (seeded, so every run and every client sends
the same bytes), so neither a per-message nor a context-takeover compressor
sees the same text twice in a row.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DOC_SIZE = 4096
N_DOCS = 64

_CITIES = ["Lisbon", "Osaka", "Nairobi", "Quito", "Tromsø", "Perth", "Lyon", "Austin"]
_ROLES = ["admin", "editor", "viewer", "owner", "guest"]
_TAGS = ["beta", "paid", "trial", "staff", "vip", "new", "legacy", "mobile"]


def _record(rng: random.Random, i: int) -> dict[str, object]:
    first = rng.choice(["ana", "bo", "chen", "dara", "eli", "femi", "gus", "hana"])
    return {
        "id": rng.randrange(10**6, 10**7),
        "name": f"{first.title()} {rng.choice('KLMNOPRST')}.",
        "email": f"{first}{i}@example.com",
        "role": rng.choice(_ROLES),
        "active": rng.random() < 0.8,
        "city": rng.choice(_CITIES),
        "score": round(rng.uniform(0, 100), 2),
        "tags": rng.sample(_TAGS, 2),
        "last_seen": f"2026-11-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
        f"{rng.randrange(60):02d}:00Z",
    }


def document(seed: int, size: int = DOC_SIZE) -> str:
    """One JSON document of exactly ``size`` characters (ASCII)."""
    rng = random.Random(seed)
    records: list[dict[str, object]] = []
    doc: dict[str, object] = {"page": seed, "total": 10_000, "items": records}
    while True:
        records.append(_record(rng, len(records)))
        text = json.dumps(doc, separators=(",", ":"))
        if len(text) > size:
            records.pop()
            break
    text = json.dumps(doc, separators=(",", ":"))
    # Pad inside the object so the document stays valid JSON of the exact size.
    pad = size - len(text) - len(',"pad":""')
    doc["pad"] = "." * max(pad, 0)
    text = json.dumps(doc, separators=(",", ":"))
    assert len(text) == size or pad < 0, (len(text), size)
    return text


def write_documents(path: Path, count: int = N_DOCS) -> Path:
    """Write ``count`` documents as a JSON list (the loaders' ``--docs`` file)."""
    docs = [document(seed) for seed in range(count)]
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(docs)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
