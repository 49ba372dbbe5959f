"""Scoring with the live SageMaker endpoint (`invoke_endpoint`, BlazingText's request and answer), with
the calibration of the model version it serves applied as the local endpoint applies it."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from services.aws.errors import aws_errors, error_code, resource_name
from services.errors import EndpointError, ModelUnavailable
from services.lifecycle.deployment import require_current
from services.lifecycle.registry import load_card
from services.model.prediction import LABELS, PREFIX, PULSE_PREPROCESSING, UNREADABLE, Prediction, apply_temperature

if TYPE_CHECKING:
    from services.aws.transform import BatchTransform
    from services.store.base import ObjectStore


class SageMakerEndpoint:
    """Scores prepared texts with the BlazingText model behind a SageMaker real-time endpoint.

    Error messages name the endpoint and what was wrong, never the texts sent (they are the
    participants' messages) nor the service's own message (a container may echo its input).
    """

    def __init__(
        self,
        runtime_client: Any,
        endpoint_name: str,
        store: ObjectStore,
        *,
        batch_size: int = 100,
        transform: BatchTransform | None = None,
        bulk_rows: int = 0,
        name_prefix: str = "pulse",
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        # From how many texts one call is scored by a Batch Transform job of the live version's
        # SageMaker model (named as the deployer names it) rather than by the endpoint; 0: never.
        self.transform = transform
        self.bulk_rows = bulk_rows if transform is not None else 0
        self.name_prefix = name_prefix
        self.runtime = runtime_client
        self.endpoint_name = endpoint_name
        self.store = store
        self.batch_size = batch_size
        self._temperatures: dict[str, float] = {}
        self._preprocessing: dict[str, str] = {}

    def version(self) -> str:
        """The deployed model version (the deployment record in the store)."""
        return require_current(self.store).version

    def refresh(self) -> None:
        """Nothing to do: the endpoint serves whatever its last update put live."""

    def preprocessing(self) -> str:
        """The deployed version's, from its card (Pulse's rules for a version without one)."""
        version = self.version()
        if version not in self._preprocessing:
            try:
                self._preprocessing[version] = load_card(self.store, version).preprocessing
            except ModelUnavailable:
                self._preprocessing[version] = PULSE_PREPROCESSING
        return self._preprocessing[version]

    def score(self, prepared: Sequence[str]) -> tuple[str, list[Prediction]]:
        """Predictions for texts already through `model.prepare`, `batch_size` per request; an
        empty text is `UNREADABLE` and is not sent. Confidences get the temperature on the version's
        model card, so they mean the same as the local endpoint's."""
        live = require_current(self.store)
        version = live.version
        # The endpoint the live deployment names (an admin may have moved it to another kind),
        # else the settings'.
        name = live.details.get("endpoint_name") or self.endpoint_name
        temperature = self._temperature(version)
        out: list[Prediction] = [UNREADABLE] * len(prepared)
        idx = [i for i, text in enumerate(prepared) if text]
        if self.transform is not None and self.bulk_rows and len(idx) >= self.bulk_rows:
            model_name = resource_name(self.name_prefix, version)  # as SageMakerDeployer names it
            batches = [(idx, self.transform.score([prepared[i] for i in idx], model_name, self._item))]
        else:
            batches = []
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                batches.append((chunk, self._invoke([prepared[i] for i in chunk], name)))
        for chunk, predictions in batches:
            for i, prediction in zip(chunk, predictions, strict=True):
                dist = apply_temperature(prediction.probs, temperature)
                best = max(dist, key=lambda k: dist[k])
                out[i] = Prediction(best, dist[best], dist)
        return version, out

    def _temperature(self, version: str) -> float:
        if version not in self._temperatures:
            try:
                self._temperatures[version] = load_card(self.store, version).temperature
            except ModelUnavailable:
                self._temperatures[version] = 1.0  # a model registered outside Pulse: raw confidences
        return self._temperatures[version]

    def _invoke(self, texts: list[str], name: str) -> list[Prediction]:
        body = json.dumps({"instances": texts, "configuration": {"k": len(LABELS)}})
        try:
            answer = self.runtime.invoke_endpoint(
                EndpointName=name,
                Body=body.encode("utf-8"),
                ContentType="application/json",
                Accept="application/json",
            )
            raw = answer["Body"].read()
        except aws_errors() as exc:
            from botocore.exceptions import ClientError

            if isinstance(exc, ClientError):
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = error_code(exc) or "error"
                raise EndpointError(
                    f"endpoint {name} refused a batch of {len(texts)} texts ({code}, HTTP {status})"
                ) from None
            raise EndpointError(f"cannot reach endpoint {name} ({type(exc).__name__})") from None
        return self._parse(raw, len(texts))

    def _parse(self, raw: bytes, expected: int) -> list[Prediction]:
        def bad(why: str) -> EndpointError:
            return EndpointError(f"endpoint {self.endpoint_name} answered something that is not a prediction: {why}")

        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad(f"not JSON ({len(raw)} bytes)") from None
        if not isinstance(data, list):
            raise bad(f"expected a JSON list, got {type(data).__name__}")
        if len(data) != expected:
            raise bad(f"{len(data)} predictions for {expected} texts")
        return [self._item(item, n) for n, item in enumerate(data)]

    def _item(self, item: Any, n: int) -> Prediction:
        """One BlazingText answer, `{"label": [...], "prob": [...]}`, as a Prediction."""

        def bad(why: str) -> EndpointError:
            return EndpointError(f"endpoint {self.endpoint_name} answered something that is not a prediction: {why}")

        if not isinstance(item, dict):
            raise bad(f"item {n} is not an object")
        labels, probs = item.get("label"), item.get("prob")
        if not isinstance(labels, list) or not isinstance(probs, list) or not labels:
            raise bad(f"item {n} has no 'label' and 'prob' lists")
        if len(labels) != len(probs):
            raise bad(f"item {n} has {len(labels)} labels and {len(probs)} probabilities")
        dist = dict.fromkeys(LABELS, 0.0)
        for label, prob in zip(labels, probs, strict=True):
            if not isinstance(label, str) or label.removeprefix(PREFIX) not in dist or label[: len(PREFIX)] != PREFIX:
                raise bad(f"item {n} has a label outside {', '.join(LABELS)}")
            name = label.removeprefix(PREFIX)
            if isinstance(prob, bool) or not isinstance(prob, int | float) or not math.isfinite(prob):
                raise bad(f"item {n} has a probability that is not a number")
            if not 0.0 <= prob <= 1.0 + 1e-3:
                raise bad(f"item {n} has a probability outside 0..1")
            dist[name] = min(1.0, float(prob))
        best = max(dist, key=lambda k: dist[k])
        return Prediction(best, dist[best], dist)
