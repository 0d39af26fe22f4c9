"""The bot's shared services: writes that wait for one under way go together."""

from __future__ import annotations

import asyncio

import pytest

from bot.services import GroupWrite


class Recorder:
    """A write that takes its time, so others queue up behind it."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.release = asyncio.Event()

    async def write(self, rows: list[int]) -> None:
        self.batches.append(rows)
        await self.release.wait()
        if self.fail:
            raise RuntimeError("database gone")


async def test_a_row_alone_is_written_at_once() -> None:
    recorder = Recorder()
    recorder.release.set()
    await asyncio.wait_for(GroupWrite(recorder.write).add(1), 1)
    assert recorder.batches == [[1]]


async def test_rows_added_while_a_write_is_under_way_go_together_in_the_next() -> None:
    recorder = Recorder()
    group = GroupWrite(recorder.write)
    first = asyncio.create_task(group.add(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    later = [asyncio.create_task(group.add(n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    assert recorder.batches == [[1]] and not first.done()
    recorder.release.set()
    await asyncio.wait_for(asyncio.gather(first, *later), 1)
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_adding_returns_only_once_the_write_is_done() -> None:
    recorder = Recorder()
    added = asyncio.create_task(GroupWrite(recorder.write).add(1))
    await asyncio.sleep(0.01)
    assert recorder.batches == [[1]] and not added.done()
    recorder.release.set()
    await asyncio.wait_for(added, 1)


async def test_a_failed_write_fails_every_row_in_it_and_the_next_rows_are_written() -> None:
    recorder = Recorder(fail=True)
    group = GroupWrite(recorder.write)
    adds = [asyncio.create_task(group.add(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    recorder.release.set()
    for add in adds:
        with pytest.raises(RuntimeError, match="database gone"):
            await asyncio.wait_for(add, 1)
    recorder.fail = False
    await asyncio.wait_for(group.add(3), 1)
    assert recorder.batches == [[1, 2], [3]]
