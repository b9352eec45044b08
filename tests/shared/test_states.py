"""The job state machine: exactly the handbook's transitions, and nothing else."""

from __future__ import annotations

import itertools
import uuid

import pytest
from sqlalchemy.orm import Session

from voxflow.jobs import service
from voxflow.jobs.states import (
    RUNNING_TO_WAITING,
    TERMINAL,
    TRANSITIONS,
    WAITING_TO_RUNNING,
    IllegalTransitionError,
    JobStatus,
    can_transition,
)

# Written out by hand from ARCHITECTURE.md ("Job lifecycle"), not derived from TRANSITIONS.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("queued", "transcribing"),
        ("queued", "failed"),
        ("queued", "canceled"),
        ("transcribing", "transcribed"),
        ("transcribing", "queued"),  # lease expired or released: back to the queue
        ("transcribing", "failed"),
        ("transcribing", "canceled"),
        ("transcribed", "generating"),
        ("transcribed", "completed"),  # no LLM tasks asked
        ("transcribed", "failed"),
        ("transcribed", "canceled"),
        ("generating", "completed"),
        ("generating", "transcribed"),  # lease expired or released: back to the LLM queue
        ("generating", "failed"),
        ("generating", "canceled"),
        # completed, failed and canceled are terminal: they go nowhere.
    }
)

PAIRS = list(itertools.product(JobStatus, JobStatus))


def test_there_are_seven_states_and_fifteen_transitions() -> None:
    assert len(PAIRS) == 49
    assert len(ALLOWED) == 15
    assert sum(len(targets) for targets in TRANSITIONS.values()) == 15
    assert set(TRANSITIONS) == set(JobStatus)


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{s}->{t}" for s, t in PAIRS])
def test_can_transition_matches_the_handbook(source: JobStatus, target: JobStatus) -> None:
    assert can_transition(source, target) is ((source.value, target.value) in ALLOWED)


def test_terminal_states_are_exactly_those_without_exits() -> None:
    assert {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED} == TERMINAL
    assert {s for s in JobStatus if not TRANSITIONS[s]} == TERMINAL


def test_every_live_state_can_fail_or_be_canceled() -> None:
    for source in set(JobStatus) - TERMINAL:
        assert can_transition(source, JobStatus.FAILED)
        assert can_transition(source, JobStatus.CANCELED)


def test_running_and_waiting_maps_are_inverse() -> None:
    assert {
        JobStatus.TRANSCRIBING: JobStatus.QUEUED,
        JobStatus.GENERATING: JobStatus.TRANSCRIBED,
    } == RUNNING_TO_WAITING
    assert len(WAITING_TO_RUNNING) == len(RUNNING_TO_WAITING)
    for running, waiting in RUNNING_TO_WAITING.items():
        assert WAITING_TO_RUNNING[waiting] is running
        # Both directions must be legal moves: claim (waiting -> running), requeue (back).
        assert can_transition(waiting, running)
        assert can_transition(running, waiting)
    for waiting, running in WAITING_TO_RUNNING.items():
        assert RUNNING_TO_WAITING[running] is waiting


FORBIDDEN = [(s, t) for s, t in PAIRS if (s.value, t.value) not in ALLOWED]


@pytest.mark.parametrize(("source", "target"), FORBIDDEN, ids=[f"{s}->{t}" for s, t in FORBIDDEN])
def test_move_refuses_forbidden_transitions(
    db_session: Session, source: JobStatus, target: JobStatus
) -> None:
    with pytest.raises(IllegalTransitionError) as raised:
        service._move(db_session, uuid.uuid4(), source, target, actor="test")
    assert raised.value.source is source
    assert raised.value.target is target
    assert isinstance(raised.value, ValueError)
