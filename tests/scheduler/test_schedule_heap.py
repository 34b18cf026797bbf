"""ScheduleHeap: due keys come out oldest first, re-armed; removed keys never fire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from harrier.common.cron import next_after, parse_cron
from harrier.scheduler.schedule_heap import ScheduleHeap

T0 = datetime(2024, 1, 1, tzinfo=UTC)
EVERY_MINUTE = parse_cron("* * * * *")
HOURLY = parse_cron("0 * * * *")
EVERY_TEN_SECONDS = parse_cron("*/10 * * * * *", with_seconds=True)


def test_empty_heap_has_no_wakeup_and_nothing_due() -> None:
    heap = ScheduleHeap()
    assert len(heap) == 0
    assert heap.next_wakeup() is None
    assert heap.pop_due(T0 + timedelta(days=365)) == []


def test_only_due_keys_are_popped_and_rearmed_at_their_next_tick() -> None:
    heap = ScheduleHeap()
    heap.add("minute", EVERY_MINUTE, T0)
    heap.add("hour", HOURLY, T0)
    assert heap.next_wakeup() == T0 + timedelta(minutes=1)
    assert heap.pop_due(T0 + timedelta(seconds=59)) == []
    assert heap.pop_due(T0 + timedelta(minutes=1)) == [("minute", T0 + timedelta(minutes=1))]
    assert heap.next_wakeup() == T0 + timedelta(minutes=2)
    assert len(heap) == 2


def test_due_ticks_come_out_oldest_first_including_every_tick_a_late_loop_missed() -> None:
    heap = ScheduleHeap()
    heap.add("ten-seconds", EVERY_TEN_SECONDS, T0)
    heap.add("minute", EVERY_MINUTE, T0)
    now = T0 + timedelta(seconds=60)
    due = heap.pop_due(now)
    assert [tick for _, tick in due] == sorted(tick for _, tick in due)
    assert [key for key, _ in due].count("ten-seconds") == 6
    assert ("minute", T0 + timedelta(minutes=1)) in due
    wakeup = heap.next_wakeup()
    assert wakeup is not None and wakeup > now


def test_removed_key_never_fires_and_re_adding_replaces_its_schedule() -> None:
    heap = ScheduleHeap()
    heap.add("a", EVERY_MINUTE, T0)
    heap.add("b", EVERY_MINUTE, T0)
    assert heap.remove("a") is True
    assert heap.remove("a") is False
    assert "a" not in heap
    heap.add("b", HOURLY, T0)  # the every-minute entry of b is now stale
    assert heap.pop_due(T0 + timedelta(minutes=59)) == []
    assert heap.pop_due(T0 + timedelta(hours=1)) == [("b", T0 + timedelta(hours=1))]
    assert len(heap) == 1
    assert heap.schedule_of("b") == HOURLY


def test_many_removals_do_not_leave_stale_wakeups() -> None:
    heap = ScheduleHeap()
    for i in range(500):
        heap.add(i, EVERY_MINUTE if i % 2 else HOURLY, T0)
    for i in range(0, 500, 2):
        heap.remove(i)
    for i in range(1, 500, 2):
        heap.remove(i)
    heap.add("last", HOURLY, T0)
    assert heap.next_wakeup() == T0 + timedelta(hours=1)
    assert len(heap) == 1


def test_keys_need_not_be_comparable() -> None:
    heap = ScheduleHeap()
    heap.add(("ns", "flow", "t1"), EVERY_MINUTE, T0)
    heap.add(frozenset({"x"}), EVERY_MINUTE, T0)
    assert len(heap.pop_due(T0 + timedelta(minutes=1))) == 2


SCHEDULES = [EVERY_MINUTE, HOURLY, EVERY_TEN_SECONDS, parse_cron("*/7 * * * *"),
             parse_cron("30 2 * * *", timezone="Europe/Paris")]
operations = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(0, 9), st.integers(0, len(SCHEDULES) - 1)),
    st.tuples(st.just("remove"), st.integers(0, 9), st.just(0)),
    st.tuples(st.just("advance"), st.integers(0, 4000), st.just(0)),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_heap_agrees_with_a_naive_scan_of_every_schedule(
        ops: list[tuple[str, int, int]]) -> None:
    heap = ScheduleHeap()
    naive: dict[int, tuple[int, datetime]] = {}  # key -> (schedule index, next tick)
    now = T0
    for op, a, b in ops:
        if op == "add":
            heap.add(a, SCHEDULES[b], now)
            naive[a] = (b, next_after(SCHEDULES[b], now))
        elif op == "remove":
            assert heap.remove(a) == (naive.pop(a, None) is not None)
        else:
            now += timedelta(seconds=a)
            expected = []
            for key, (index, tick) in naive.items():
                while tick <= now:
                    expected.append((key, tick))
                    tick = next_after(SCHEDULES[index], tick)
                naive[key] = (index, tick)
            got = heap.pop_due(now)
            assert sorted(got, key=lambda kt: (kt[1], kt[0])) == sorted(
                expected, key=lambda kt: (kt[1], kt[0]))
            assert [t for _, t in got] == sorted(t for _, t in got)
        assert len(heap) == len(naive)
        assert heap.next_wakeup() == min((t for _, t in naive.values()), default=None)
