"""Telegram I/O: parse a command, call the domain in `models`, render the reply.

Nothing here holds a business rule; see ../shared/DESIGN.md "Layers".
"""
