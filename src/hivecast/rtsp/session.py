"""RTSP session states as a table (RFC 2326 appendix A), so every legal transition is visible here."""

from __future__ import annotations

import secrets
from enum import Enum

from hivecast.rtsp.errors import MethodNotValid


class State(Enum):
    INIT = "init"  # a connection with no session yet
    ANNOUNCED = "announced"  # a publisher described its media (pre-record)
    READY_RECORD = "ready-record"  # publisher tracks set up
    RECORDING = "recording"
    READY_PLAY = "ready-play"  # reader tracks set up, or paused
    PLAYING = "playing"


# (state, method) -> next state. Methods valid in every state (OPTIONS, GET_PARAMETER,
# SET_PARAMETER, TEARDOWN) are handled before the table.
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.INIT, "DESCRIBE"): State.INIT,
    (State.INIT, "ANNOUNCE"): State.ANNOUNCED,
    (State.INIT, "SETUP"): State.READY_PLAY,
    (State.ANNOUNCED, "SETUP"): State.READY_RECORD,
    (State.READY_RECORD, "SETUP"): State.READY_RECORD,
    (State.READY_RECORD, "RECORD"): State.RECORDING,
    (State.RECORDING, "RECORD"): State.RECORDING,
    (State.READY_PLAY, "DESCRIBE"): State.READY_PLAY,
    (State.READY_PLAY, "SETUP"): State.READY_PLAY,
    (State.READY_PLAY, "PLAY"): State.PLAYING,
    (State.READY_PLAY, "PAUSE"): State.READY_PLAY,
    (State.PLAYING, "PLAY"): State.PLAYING,
    (State.PLAYING, "PAUSE"): State.READY_PLAY,
    (State.PLAYING, "DESCRIBE"): State.PLAYING,
}
ANY_STATE = frozenset({"OPTIONS", "GET_PARAMETER", "SET_PARAMETER", "TEARDOWN"})


def next_state(state: State, method: str) -> State:
    """The state after `method`, or MethodNotValid (455) when the table has no such transition."""
    if method in ANY_STATE:
        return state
    try:
        return TRANSITIONS[(state, method)]
    except KeyError:
        raise MethodNotValid(f"{method} is not valid in state {state.value}") from None


def new_session_id() -> str:
    return secrets.token_hex(8)
