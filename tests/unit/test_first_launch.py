"""The first-launch build's progress file and its remaining-time estimate."""
import os

import pytest

from medvqa.zoo import first_launch


@pytest.fixture
def checkpoints(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVQA_CHECKPOINTS", str(tmp_path))
    (tmp_path / ".first-launch").mkdir()
    return tmp_path / ".first-launch" / "progress.jsonl"


def test_the_estimate_scales_with_the_measured_pace_and_waits_for_evidence():
    plan = first_launch.work_plan("trained")
    assert "train idefics2-phantom-2stage" in plan and "evaluate vilt-phantom" in plan
    assert "evaluate idefics2-phantom-captions" not in plan  # caption stage: not evaluated
    halfway = {item: 1.0 for item in list(plan)[: len(plan) // 2]}
    fast = first_launch.Build(phase="trained", wanted="trained", plan=plan, done=halfway, elapsed=100.0)
    slow = first_launch.Build(phase="trained", wanted="trained", plan=plan, done=halfway, elapsed=200.0)
    fraction = fast.fraction()
    assert 0 < fraction < 1
    assert fast.remaining_s() == pytest.approx(100.0 * (1 - fraction) / fraction)
    assert slow.remaining_s() == pytest.approx(2 * fast.remaining_s())  # a busier machine: a longer estimate
    assert first_launch.Build(phase="untrained", wanted="trained", plan=plan, elapsed=30.0).remaining_s() is None
    done = first_launch.Build(phase="done", wanted="trained", plan=plan, done={item: 1.0 for item in plan},
                              elapsed=300.0)
    assert done.fraction() == pytest.approx(1.0) and done.remaining_s() == pytest.approx(0.0)


def test_the_estimate_is_a_range_from_the_paces_its_finished_items_ran_at():
    from medvqa.ui.home_panels import time_left

    plan = {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0}
    one = first_launch.Build(phase="trained", plan=plan, done={"a": 1.0}, spans={"a": (0.0, 20.0)}, elapsed=20.0)
    assert one.remaining_s() == pytest.approx(60.0)
    assert one.remaining_range() == pytest.approx((30.0, 120.0))  # one item says little: half to twice
    # a took 2 s per reference second, b 5: c and d (20 reference seconds) take 40 to 100 s; the average says 70 s
    two = first_launch.Build(phase="trained", plan=plan, done={"a": 1.0, "b": 1.0},
                             spans={"a": (0.0, 20.0), "b": (20.0, 70.0)}, elapsed=70.0)
    assert two.remaining_s() == pytest.approx(70.0)
    assert two.remaining_range() == pytest.approx((40.0, 100.0))
    assert time_left(None) == "estimating the time left"
    assert time_left((600.0, 2400.0)) == "10 to 40 min left at the paces measured so far"
    assert time_left((600.0, 660.0)) == "about 10 min left at the pace measured so far"


def test_progress_events_give_each_item_its_span(checkpoints):
    report = first_launch._Reporter(checkpoints, "trained")
    report.step("untrained", 1, 1)
    for step in (1, 2, 3):
        report.step("train vilt-phantom", step, 3)
    build = first_launch.current()
    first, last = build.spans["train vilt-phantom"]
    assert 0 <= first <= last and build.done["train vilt-phantom"] == 1.0


def test_the_progress_file_tells_phase_steps_messages_and_a_vanished_builder(checkpoints):
    report = first_launch._Reporter(checkpoints, "trained")
    report.say("building the untrained zoo")
    report.step("untrained", 1, 1)
    report.phase("trained")
    for step in range(1, 301):
        report.step("train vilt-phantom", step, 300)
    build = first_launch.current()
    assert build.phase == "trained" and build.running and build.pid == os.getpid() and build.wanted == "trained"
    assert build.done["train vilt-phantom"] == 1.0 and build.done["untrained"] == 1.0
    assert build.plan == first_launch.work_plan("trained")  # the page reads the plan; it imports no family
    assert any("building the untrained zoo" in line for line in build.log)
    assert sum('"item": "train vilt-phantom"' in line for line in checkpoints.read_text().splitlines()) <= 3
    checkpoints.write_text(checkpoints.read_text().replace(f'"pid": {os.getpid()}', '"pid": 999999999'))
    gone = first_launch.current()
    assert gone.phase == "failed" and "ended without finishing" in gone.error


def test_the_panel_says_durations_in_words_and_when_the_machine_is_busy(monkeypatch):
    import os

    from medvqa.ui import home_panels

    assert [home_panels.duration(s) for s in (45, 720, 6698)] == ["45 s", "12 min", "1 h 52 min"]
    monkeypatch.setattr(os, "getloadavg", lambda: (9.5, 9.0, 8.0))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert home_panels.busy_note() == "the machine is busy (load 9.5 on 2 cores), so this may take longer"
    monkeypatch.setattr(os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert home_panels.busy_note() is None
    assert home_panels.PROGRESS_POLL_S >= 5  # the panel polls the progress file, it does not spin


def test_an_empty_store_says_the_zoo_is_being_built_while_it_is(checkpoints):
    from medvqa.ui import results

    assert "run `medvqa eval" in results.empty_store_message()  # nothing is being built: how to fill the store
    report = first_launch._Reporter(checkpoints, "trained")  # a build in this (live) process
    report.phase("trained")
    assert "the demo zoo is being built" in results.empty_store_message()
