"""Recorded sessions: read them, replay them through the live path, normalize them offline.

- ``readers``: ``read_frames`` (hftbacktest, cryptofeed, JSON lines; gzip or not);
- ``replay``: a local websocket server that replays a recording into the real feed;
- ``normalize``: the offline parse path behind ``ticktide normalize``.
"""
