"""Scoring the requests that wait together in one call, in chunks of about `TURN_SECONDS` each with a
turn of the event loop between two, so `/ping` never waits behind a large batch."""

from __future__ import annotations

import asyncio
import time

from services.lifecycle.endpoint import Endpoint
from services.model.prediction import Prediction

# Scoring gives the event loop a turn after this much text, so /ping (SageMaker's health check,
# which must answer within 2 s) and other requests are served while a large batch is scored.
CHUNK_CHARS = 50_000  # the first chunk; the next ones are sized to take about TURN_SECONDS each


CHUNK_INSTANCES = 2_000


TURN_SECONDS = 0.1


MIN_CHUNK_CHARS = 2_000


MAX_CHUNK_CHARS = 1_000_000


Answer = asyncio.Future[tuple[str, list[Prediction]]]


def chunks(texts: list[str], max_chars: int = CHUNK_CHARS, max_texts: int = CHUNK_INSTANCES) -> list[list[str]]:
    """`texts` in order, cut into runs of at most `max_texts` texts and about `max_chars` characters
    (a run holds at least one text, however long)."""
    out: list[list[str]] = [[]]
    size = 0
    for text in texts:
        if out[-1] and (len(out[-1]) >= max_texts or size + len(text) > max_chars):
            out.append([])
            size = 0
        out[-1].append(text)
        size += len(text)
    return out


class Coalescer:
    """Scores, in as few `endpoint.score` calls as it can, every request waiting to be scored; each
    gets its own slice of the predictions and the version that made all of them. Predictions do
    not depend on what else is in the batch (each text is scored on its own).

    One worker scores at a time, a batch in `chunks`, giving the event loop a turn between two
    chunks: a large request never keeps /ping waiting for more than one chunk. Requests that arrive
    meanwhile are scored together in the next batch."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._pending: list[tuple[list[str], Answer]] = []
        self._worker: asyncio.Task[None] | None = None
        self._chunk_chars = CHUNK_CHARS

    def _adapt(self, chars: int, seconds: float) -> None:
        """Size the next chunk to take about `TURN_SECONDS` at the rate this one was scored (fastText
        scores many times faster than the linear model, and made-up words cost more than real ones)."""
        if chars >= MIN_CHUNK_CHARS and seconds > 0:
            wanted = int(chars / seconds * TURN_SECONDS)
            self._chunk_chars = min(MAX_CHUNK_CHARS, max(MIN_CHUNK_CHARS, (self._chunk_chars + wanted) // 2))

    def score(self, instances: list[str]) -> Answer:
        loop = asyncio.get_running_loop()
        answer: Answer = loop.create_future()
        self._pending.append((instances, answer))
        if self._worker is None:
            self._worker = loop.create_task(self._work())
        return answer

    async def _work(self) -> None:
        try:
            await asyncio.sleep(0)  # the requests whose bodies arrived in this turn join the batch
            while self._pending:
                batch, self._pending = self._pending, []
                await self._score(batch)
        finally:
            self._worker = None

    async def _score(self, batch: list[tuple[list[str], Answer]]) -> None:
        texts = [text for instances, _ in batch for text in instances]
        try:
            version, predictions = await self._score_chunks(texts)
        except Exception as exc:  # noqa: BLE001 (each waiting request gets it, as it would have alone)
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        start = 0
        for instances, answer in batch:
            if not answer.done():  # a client that went away cancelled its wait
                answer.set_result((version, predictions[start : start + len(instances)]))
            start += len(instances)

    async def _score_chunks(self, texts: list[str]) -> tuple[str, list[Prediction]]:
        while True:
            versions: set[str] = set()
            predictions: list[Prediction] = []
            start = 0
            while start < len(texts):
                if start:
                    await asyncio.sleep(0)  # /ping and new requests are served between two chunks
                part = chunks(texts[start : start + CHUNK_INSTANCES], max_chars=self._chunk_chars)[0]
                began = time.perf_counter()
                version, scored = self.endpoint.score(part)
                self._adapt(sum(map(len, part)), time.perf_counter() - began)
                versions.add(version)
                predictions.extend(scored)
                start += len(part)
            if len(versions) == 1:
                return version, predictions
