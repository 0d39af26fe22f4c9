"""The sandbox: Closeout without a Telegram token.

`sandbox.botapi` is a local Bot API server that speaks Telegram's HTTP JSON on
loopback; the tests point the real python-telegram-bot stack at it, and
`closeout sandbox` serves it to new users together with a web chat.
"""
