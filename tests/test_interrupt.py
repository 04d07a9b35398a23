"""The stop flag (shotflow.interrupt) and Ctrl-C/SIGTERM on the real CLI's process group."""

from __future__ import annotations

import pickle

from shotflow import interrupt
from shotflow.errors import GenerationError


def test_the_stop_flag_is_raised_and_cleared():
    interrupt.reset()
    assert not interrupt.stop_requested()
    interrupt.request_stop()
    assert interrupt.stop_requested()
    assert interrupt.wait(5)  # returns at once once stopped
    interrupt.reset()
    assert not interrupt.stop_requested()
    assert not interrupt.wait(0)


def test_interrupted_is_a_permanent_generation_error_that_pickles():
    err = interrupt.Interrupted("opening")
    assert isinstance(err, GenerationError)
    assert not err.transient
    assert "opening" in str(err) and "nothing paid" in str(err)
    copy = pickle.loads(pickle.dumps(err))
    assert isinstance(copy, interrupt.Interrupted)
    assert str(copy) == str(err) and copy.transient is False
