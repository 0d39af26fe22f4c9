"""The sandbox's web chat: `server.make_app` and the page in `static/`."""
