"""Tables and the domain rules of Closeout.

Pure rules (state machine, working days, lights, ladder, permissions) are plain
functions over plain values; data access takes a session and never commits.
Nothing here imports Telegram, Dramatiq or the settings at import time.
"""
