"""Channels and their handler tables (``wskit.hub.registry``), live: each channel its own handlers.

The test serves a :class:`~wskit.hub.Hub` and talks to it with
:class:`~hub.hub_support.Peer`, a ws-wrapper client written by hand.
"""

from hub.hub_support import Peer, pinging_hub, serving
from wskit.hub import Client

# --------------------------------------------------------------------------- channels


async def test_channels_have_their_own_handlers_and_emits() -> None:
    hub = pinging_hub()
    hub.on("say", lambda text: f"main: {text}")
    chat = hub.of("chat")
    assert hub.of("chat") is chat
    chat.on("say", lambda text: f"chat: {text}")

    @hub.on("connect")
    def per_client(client: Client) -> None:
        side = client.of("chat")
        assert client.of("chat") is side
        side.on("mine", lambda: f"chat of {client.id}")
        client.of("private").on("secret", lambda: "private channel of one client")

    async with serving(hub) as url:
        peer = await Peer.open(url)
        assert await peer.call("say", "hi") == "main: hi"
        assert await peer.call("say", "hi", channel="chat") == "chat: hi"
        (client,) = hub.clients.values()
        assert await peer.call("mine", channel="chat") == f"chat of {client.id}"
        assert await peer.call("secret", channel="private") == "private channel of one client"
        assert await peer.request("mine") == {
            "i": 5,
            "e": {"message": "No event listener for 'mine'"},
            "_": 1,
        }

        chat.emit("to_all", 1)
        await peer.next_only({"c": "chat", "a": ["to_all", 1]})
        assert client.of("chat").emit("to_one", 2) is True
        await peer.next_only({"c": "chat", "a": ["to_one", 2]})
        await peer.close()
