"""The application of the deployment guide: ``wskit serve app:hub`` behind a proxy.

A hub that echoes plain text messages and answers one request, ``whoami``,
with what the server knows of the caller: the address of the socket (the
proxy's), and the headers the proxy added.
"""

from __future__ import annotations

from wskit.hub import Client, Hub

hub = Hub()


@hub.on_native  # messages that are not ws-wrapper's JSON: plain text
def echo(client: Client, message: str | bytes) -> None:
    if isinstance(message, str):
        client.send(message)


@hub.on("whoami")
def whoami(client: Client) -> dict[str, str | None]:
    headers = client.request_info.headers
    return {
        "peer": client.conn.remote_address[0],  # the proxy, not the browser
        "forwarded_for": headers.get("X-Forwarded-For"),
        "forwarded_proto": headers.get("X-Forwarded-Proto"),
        "host": headers.get("Host"),
    }
