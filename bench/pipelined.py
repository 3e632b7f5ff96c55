"""Runs many store plans at once: each round sends every plan's next step in one pipeline.

The plans are the store's own (`state.plans`), so the keys, scripts and TTLs written are exactly
those of `ApprovalStore.create/decide`, only thousands at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slack_approvals.state.plans import Batch, Call, Plan, RunScript, Step
from slack_approvals.state.scripts import script_source


class PipelinedRunner:
    def __init__(self, client: Any, chunk: int = 1000) -> None:
        self.client = client
        self.chunk = chunk
        self._scripts: dict[str, Any] = {}

    def _queue(self, pipe: Any, step: Step) -> int:
        """Queue one step; returns how many replies it will produce (-1: one, not a list)."""
        if isinstance(step, RunScript):
            if step.name not in self._scripts:
                self._scripts[step.name] = self.client.register_script(script_source(step.name))
            self._scripts[step.name](keys=step.keys, args=step.args, client=pipe)
            return -1
        if isinstance(step, Batch):
            for call in step.calls:
                getattr(pipe, call.command)(*call.args, **call.kwargs)
            return len(step.calls)
        assert isinstance(step, Call)
        getattr(pipe, step.command)(*step.args, **step.kwargs)
        return -1

    def run(self, plans: Sequence[Plan]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(plans), self.chunk):
            results += self._run_chunk(plans[start:start + self.chunk])
        return results

    def _run_chunk(self, plans: Sequence[Plan]) -> list[Any]:
        results: list[Any] = [None] * len(plans)
        steps: dict[int, Step] = {i: next(plan) for i, plan in enumerate(plans)}
        while steps:
            pipe = self.client.pipeline(transaction=False)
            shapes = [(i, self._queue(pipe, step)) for i, step in steps.items()]
            replies = pipe.execute()
            position = 0
            following: dict[int, Step] = {}
            for i, count in shapes:
                if count < 0:
                    value = replies[position]
                    position += 1
                else:
                    value = replies[position:position + count]
                    position += count
                try:
                    following[i] = plans[i].send(value)
                except StopIteration as stop:
                    results[i] = stop.value
            steps = following
        return results
