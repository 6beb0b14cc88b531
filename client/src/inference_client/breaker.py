"""A circuit breaker: after `failure_threshold` consecutive failures it opens and the client fails fast (raising
`CircuitOpenError`, sending nothing) for `cooldown` seconds; then it is half-open and lets exactly one probe request
through. The probe's success closes it; its failure opens it for another cool-down.

Failures are what says the API is unwell: connection errors, timeouts, 408 and 5xx. Any other answer (2xx, 4xx,
429) is a success for the breaker: the API is up and answering.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from inference_client.errors import CircuitOpenError
from inference_client.observability import BreakerEvent, BreakerState


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 10,
        cooldown: float = 30.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`failure_threshold` 0 turns the breaker off."""
        if failure_threshold < 0 or cooldown < 0:
            raise ValueError("failure_threshold and cooldown must not be negative")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._listeners: list[Callable[[BreakerEvent], None]] = []

    def add_listener(self, listener: Callable[[BreakerEvent], None]) -> None:
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self) -> bool:
        """Before a request: raises CircuitOpenError to fail fast, else says whether this request is the probe."""
        if not self.failure_threshold:
            return False
        with self._lock:
            if self._state == BreakerState.CLOSED:
                return False
            if self._state == BreakerState.OPEN:
                remaining = self._opened_at + self.cooldown - self._clock()
                if remaining > 0:
                    raise CircuitOpenError(
                        state=self._state.value, consecutive_failures=self._failures, retry_after=remaining
                    )
                event = self._move(BreakerState.HALF_OPEN)
            elif self._probe_in_flight:
                raise CircuitOpenError(state=self._state.value, consecutive_failures=self._failures, retry_after=None)
            else:
                event = None
            self._probe_in_flight = True
        self._notify(event)
        return True

    def record_success(self, probe: bool) -> None:
        with self._lock:
            self._failures = 0
            event = None
            if probe and self._state == BreakerState.HALF_OPEN:
                self._probe_in_flight = False
                event = self._move(BreakerState.CLOSED)
        self._notify(event)

    def record_failure(self, probe: bool) -> None:
        if not self.failure_threshold:
            return
        with self._lock:
            self._failures += 1
            event = None
            if probe and self._state == BreakerState.HALF_OPEN:
                self._probe_in_flight = False
                self._opened_at = self._clock()
                event = self._move(BreakerState.OPEN)
            elif self._state == BreakerState.CLOSED and self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                event = self._move(BreakerState.OPEN)
        self._notify(event)

    def release(self, probe: bool) -> None:
        """The request ended with no verdict (cancelled, or failed before sending): free the probe slot."""
        if probe:
            with self._lock:
                self._probe_in_flight = False

    def _move(self, state: BreakerState) -> BreakerEvent:
        event = BreakerEvent(previous=self._state, state=state, consecutive_failures=self._failures)
        self._state = state
        return event

    def _notify(self, event: BreakerEvent | None) -> None:
        if event is not None:
            for listener in self._listeners:
                listener(event)
