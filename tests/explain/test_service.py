"""Explanations through a real engine on loopback, stored on SQLite and PostgreSQL: call counts,
lookup by transaction id, storage, and every failure mode."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, _Model, create_engine_app
from scrutiny.errors import Conflict, InvalidInput, NotFound
from scrutiny.explain.service import ExplanationService
from scrutiny.explain.store import ERROR, FINISHED, IN_PROGRESS
from scrutiny.service import Service
from tests.support.explain import Subscribed, engine_stats, python_row, subscribe


def calls(before: dict[str, int], after: dict[str, int], key: str = "calls:credit-risk") -> int:
    return after.get(key, 0) - before.get(key, 0)


def test_lime_is_one_internal_call_and_is_stored(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    payload_rows = credit_sub.payload_count()
    before = credit_sub.stats()
    expl = svc.explanations.explain(sub.id, scoring_id="tx-2-1")
    after = credit_sub.stats()
    assert calls(before, after) == 1
    assert calls(before, after, "internal_calls") == 1
    assert calls(before, after, "rows") == 5001
    assert expl.status == FINISHED and expl.error is None
    assert expl.scoring_calls == 1 and expl.scored_rows == 5001
    assert expl.scoring_id == "tx-2-1" and expl.method == "lime"
    assert expl.record == {"fields": credit.FEATURES, "values": [python_row(credit_sub.frame, 2, credit.FEATURES)]}
    body = expl.to_dict()
    assert body["prediction"] == body["logged_prediction"] and body["prediction_changed"] is False
    assert len(body["contributions"]) == 10 and body["perturbations"] == 5000
    assert set(body["timings"]) >= {"total_ms", "scoring_ms", "sampling_ms", "fitting_ms", "queued_ms"}
    assert credit_sub.payload_count() == payload_rows  # internal scoring is never logged
    stored = svc.explanations.get(sub.id, expl.id)
    assert stored.to_dict() == body  # shown again without rescoring
    assert calls(after, credit_sub.stats()) == 0


def test_row_suffix_is_optional_for_a_one_row_record(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    a = svc.explanations.explain(sub.id, scoring_id="tx-3")
    b = svc.explanations.explain(sub.id, scoring_id="tx-3-1")
    assert a.scoring_id == b.scoring_id == "tx-3-1"
    assert a.result == b.result  # same row, seed and statistics: the same explanation
    with pytest.raises(InvalidInput, match="'multi' has 3 rows"):
        svc.explanations.create(sub.id, scoring_id="multi")
    c = svc.explanations.explain(sub.id, scoring_id="multi-2")
    assert c.record["values"][0] == python_row(credit_sub.frame, 1, credit.FEATURES)
    total, rows = svc.explanations.list(sub.id, scoring_id="tx-3")
    assert total == 2 and {r.id for r in rows} == {a.id, b.id}
    assert svc.explanations.list(sub.id, scoring_id="multi")[0] == 1
    assert svc.explanations.list(sub.id)[0] == 3


def test_seed_changes_the_sample(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    a = svc.explanations.explain(sub.id, scoring_id="tx-4-1")
    b = svc.explanations.explain(sub.id, scoring_id="tx-4-1", options={"seed": 7})
    assert a.result and b.result
    assert a.result["random_seed"] != b.result["random_seed"]
    assert [c["coefficient"] for c in a.result["contributions"]] != [
        c["coefficient"] for c in b.result["contributions"]
    ]


def test_inline_record(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    row = python_row(credit_sub.frame, 10, credit.FEATURES)
    reordered = {"fields": list(reversed(credit.FEATURES)), "values": [list(reversed(row))]}
    expl = svc.explanations.explain(sub.id, record=reordered, method="contrastive")
    assert expl.status == FINISHED and expl.scoring_id is None
    assert expl.record["values"][0] == row and expl.request["source"] == "inline"
    again = svc.explanations.explain(sub.id, record={"fields": credit.FEATURES, "values": row})  # a flat row
    assert again.status == FINISHED
    bad = {"fields": credit.FEATURES, "values": [[*row[:1], "twelve", *row[2:]]]}
    with pytest.raises(InvalidInput, match="LoanDuration"):
        svc.explanations.create(sub.id, record=bad)
    with pytest.raises(InvalidInput, match="lacks features"):
        svc.explanations.create(sub.id, record={"fields": credit.FEATURES[:-1], "values": [row[:-1]]})
    with pytest.raises(InvalidInput, match="exactly one row"):
        svc.explanations.create(sub.id, record={"fields": credit.FEATURES, "values": [row, row]})
    missing = {"fields": credit.FEATURES, "values": [[None, *row[1:]]]}
    with pytest.raises(InvalidInput, match="CheckingStatus"):
        svc.explanations.create(sub.id, record=missing)


def test_contrastive_needs_at_most_ten_calls(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    for i in range(6):
        before = credit_sub.stats()
        expl = svc.explanations.explain(sub.id, scoring_id=f"tx-{i}", method="contrastive")
        n = calls(before, credit_sub.stats())
        assert expl.status == FINISHED and 1 <= n <= 10 and expl.scoring_calls == n
        assert expl.result and expl.result["pertinent_positive"]["complete"]


def test_regression(amount_sub: Subscribed) -> None:
    svc, sub = amount_sub.service, amount_sub.sub
    before = amount_sub.stats()
    expl = svc.explanations.explain(sub.id, scoring_id="tx-1")
    assert calls(before, amount_sub.stats(), "calls:credit-amount") == 1
    assert expl.status == FINISHED and expl.result is not None
    model = credit.train_amount_model()
    expected = model.predict(pd.DataFrame([expl.record["values"][0]], columns=credit.AMOUNT_FEATURES))[0]
    assert expl.result["prediction"] == pytest.approx(expected, abs=1e-5)  # the engine rounds to 6 places
    assert expl.result["probability"] is None and expl.result["contributions"]
    assert expl.result["prediction_changed"] is False
    assert expl.result["logged_prediction"] == pytest.approx(expl.result["prediction"])
    with pytest.raises(InvalidInput, match="classification"):
        svc.explanations.create(sub.id, scoring_id="tx-1", method="contrastive")
    both = svc.explanations.explain(sub.id, scoring_id="tx-1", method="lime+contrastive")
    assert both.status == FINISHED and both.result and "contrastive_skipped" in both.result


def test_unknown_transaction_and_subscription(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    with pytest.raises(NotFound, match="no transaction 'nope'"):
        svc.explanations.create(sub.id, scoring_id="nope")
    with pytest.raises(NotFound, match="subscription"):
        svc.explanations.create("no-such-subscription", scoring_id="tx-1")
    with pytest.raises(InvalidInput, match="either scoring_id"):
        svc.explanations.create(sub.id)
    with pytest.raises(InvalidInput, match="method"):
        svc.explanations.create(sub.id, scoring_id="tx-1", method="shap")
    with pytest.raises(InvalidInput, match=r"options\.perturbations"):
        svc.explanations.create(sub.id, scoring_id="tx-1", options={"perturbations": 5})
    assert svc.explanations.list(sub.id)[0] == 0  # nothing stored for a rejected request


def test_subscription_without_training_statistics(service: Service, engine_server: BackgroundServer) -> None:
    binding, _ = service.bindings.create(name="e", engine_type="custom", credentials={"url": engine_server.url})
    schema = {
        "fields": [
            {"name": f, "type": "string" if f in credit.CATEGORICAL_FEATURES else "integer"} for f in credit.FEATURES
        ]
    }
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="credit-risk",
        asset_properties={"problem_type": "binary", "labels": credit.LABELS, "input_data_schema": schema},
    )
    row = python_row(credit.load_german(), 0, credit.FEATURES)
    with pytest.raises(Conflict, match="no training statistics") as err:
        service.explanations.create(sub.id, record={"fields": credit.FEATURES, "values": [row]})
    assert err.value.status == 409 and "training_data" in err.value.message
    assert service.explanations.list(sub.id)[0] == 0


def test_engine_failure_is_stored_as_error(service: Service, engine_server: BackgroundServer) -> None:
    german = credit.load_german()
    binding, _ = service.bindings.create(name="e", engine_type="custom", credentials={"url": engine_server.url})
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="fault-500",
        asset_properties={"problem_type": "binary", "label_column": credit.LABEL},
        training_frame=german,
    )
    row = python_row(german, 0, credit.FEATURES)
    expl = service.explanations.explain(sub.id, record={"fields": credit.FEATURES, "values": [row]})
    assert expl.status == ERROR and expl.result is None
    assert expl.error and expl.error["code"] == "engine_server_error" and expl.error["http_status"] == 502
    assert "fault-500" in expl.error["message"]
    assert expl.scoring_calls == 1 and expl.finished_at is not None


class FailsAfter:
    """A real model that fails (HTTP 400 from the engine) from its ``n``-th scoring call on."""

    def __init__(self, n: int) -> None:
        self.inner = _Model("flaky", "binary", credit.FEATURES, credit.train_credit_model(), credit.LABELS)
        self.problem_type, self.label_column, self.features = "binary", credit.LABEL, credit.FEATURES
        self.n, self.seen = n, 0

    def score(self, fields: list[str], values: list[list[Any]]) -> Any:
        self.seen += 1
        if self.seen >= self.n:
            raise ValueError("model server lost its GPU")
        return self.inner.score(fields, values)


class Slow:
    """A real model that sleeps ``delays[n]`` seconds on its n-th call (0-based)."""

    def __init__(self, delays: list[float]) -> None:
        self.inner = _Model("slow", "binary", credit.FEATURES, credit.train_credit_model(), credit.LABELS)
        self.problem_type, self.label_column, self.features = "binary", credit.LABEL, credit.FEATURES
        self.delays, self.seen = delays, 0

    def score(self, fields: list[str], values: list[list[Any]]) -> Any:
        delay = self.delays[self.seen] if self.seen < len(self.delays) else 0.0
        self.seen += 1
        time.sleep(delay)
        return self.inner.score(fields, values)


def test_engine_failure_mid_explanation_stores_nothing_partial(service: Service) -> None:
    model = FailsAfter(3)  # call 1 logs the payload rows; the explanation fails on its second call
    with BackgroundServer(create_engine_app(EngineOptions(), models={"flaky": model})) as srv:
        s = subscribe(
            service,
            srv.url,
            "flaky",
            credit.load_german(),
            problem_type="binary",
            label=credit.LABEL,
            features=credit.FEATURES,
        )
        expl = service.explanations.explain(s.sub.id, scoring_id="tx-1", method="contrastive")
    assert expl.status == ERROR and expl.result is None
    assert expl.scoring_calls == 2 and expl.error
    assert "rejected" in expl.error["code"] and "lost its GPU" in expl.error["message"]
    body = expl.to_dict()
    assert "pertinent_positive" not in body and "contributions" not in body


def test_batches_split_only_where_the_engine_forces_it(service: Service, engine_server: BackgroundServer) -> None:
    url = f"{engine_server.url}/v1/deployments/credit-risk/online"
    s = subscribe(
        service,
        engine_server.url,
        "credit-risk",
        credit.load_german(),
        problem_type="binary",
        label=credit.LABEL,
        features=credit.FEATURES,
        deployment={"name": "credit-risk", "scoring_url": url, "options": {"max_batch_rows": 1000}},
    )
    before = s.stats()
    expl = service.explanations.explain(s.sub.id, scoring_id="tx-0")
    assert calls(before, s.stats()) == 6 == expl.scoring_calls  # ceil(5001 / 1000)
    assert expl.result and expl.result["perturbations"] == 5000 and not expl.result["truncated"]


def test_time_budget_truncates_between_chunks(service: Service) -> None:
    # calls: 0 logs the payload; 1-2 are the first explanation's chunks; 3 the second's first chunk;
    # 4 logs the payload of a second subscription (200-row batches), 5 is its first chunk
    model = Slow([0.0, 0.0, 10.0, 2.5, 0.0, 1.0])
    with BackgroundServer(create_engine_app(EngineOptions(), models={"slow": model})) as srv:
        url = f"{srv.url}/v1/deployments/slow/online"
        s = subscribe(
            service,
            srv.url,
            "slow",
            credit.load_german(),
            problem_type="binary",
            label=credit.LABEL,
            features=credit.FEATURES,
            deployment={"name": "slow", "scoring_url": url, "options": {"max_batch_rows": 1000}},
        )
        # the first chunk comes back within the budget (ample, for a busy machine), the second
        # after it: stop there
        expl = service.explanations.explain(s.sub.id, scoring_id="tx-0", options={"time_budget_s": 10})
        assert expl.status == FINISHED and expl.result
        assert expl.result["truncated"] is True and expl.scoring_calls == 2
        assert expl.result["perturbations"] == 1999 and expl.result["requested_perturbations"] == 5000
        # the first chunk alone outlasts the budget: it is still used (1000 rows >= 500)
        first = service.explanations.explain(s.sub.id, scoring_id="tx-0", options={"time_budget_s": 0.5})
        assert first.status == FINISHED and first.result and first.scoring_calls == 1
        assert first.result["perturbations"] == 999 and first.result["truncated"] is True
        # out of time with fewer than 500 rows scored: an error, not a flimsy explanation
        small = subscribe(
            service,
            srv.url,
            "slow",
            credit.load_german(),
            problem_type="binary",
            label=credit.LABEL,
            features=credit.FEATURES,
            deployment={"name": "slow", "scoring_url": url, "options": {"max_batch_rows": 200}},
        )
        failed = service.explanations.explain(small.sub.id, scoring_id="tx-0", options={"time_budget_s": 0.5})
        assert failed.status == ERROR and failed.result is None and failed.scoring_calls == 1
        assert failed.error and failed.error["code"] == "time_budget_exceeded"
        assert "after scoring 200 of 5001 rows" in failed.error["message"]


def test_restart_marks_in_progress_explanations_interrupted(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    previous_server = ExplanationService(svc)
    orphan = previous_server.create(sub.id, scoring_id="tx-1")  # created, never run: that server stopped
    mine = svc.explanations.create(sub.id, scoring_id="tx-2")  # queued in this server
    assert svc.explanations.start() == 1
    gone = svc.explanations.get(sub.id, orphan.id)
    assert gone.status == ERROR and gone.error and gone.error["code"] == "interrupted"
    assert "request it again" in gone.error["message"] and gone.result is None and gone.finished_at
    assert svc.explanations.get(sub.id, mine.id).status == IN_PROGRESS
    # an interrupted explanation never turns into a finished one later
    assert svc.explanations.run(orphan.id).status == ERROR
    assert svc.explanations.run(mine.id).status == FINISHED


def test_background_pool_and_close(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    ids = [svc.explanations.create(sub.id, scoring_id=f"tx-{i}").id for i in range(4)]
    futures = [svc.explanations.submit(i) for i in ids]
    done = [f.result(timeout=60) for f in futures]
    assert [d.status for d in done] == [FINISHED] * 4
    queued = [svc.explanations.create(sub.id, scoring_id="tx-5", method="contrastive").id for _ in range(6)]
    pending = [svc.explanations.submit(i) for i in queued]
    deadline = time.monotonic() + 30
    while not any(f.running() or f.done() for f in pending) and time.monotonic() < deadline:
        time.sleep(0.005)
    svc.explanations.close()  # running ones finish, queued ones are cancelled and marked
    states = [svc.explanations.get(sub.id, i).status for i in queued]
    assert IN_PROGRESS not in states and FINISHED in states, [svc.explanations.get(sub.id, i).error for i in queued]


def test_deleting_the_subscription_deletes_its_explanations(credit_sub: Subscribed) -> None:
    svc, sub = credit_sub.service, credit_sub.sub
    expl = svc.explanations.explain(sub.id, scoring_id="tx-0")
    svc.subscriptions.delete(sub.id)
    assert svc.explanations.store.find(expl.id) is None


def test_adult_census_through_the_engine(service: Service, adult_engine: BackgroundServer) -> None:
    from tests.support.explain import ADULT_FEATURES, load_adult

    s = subscribe(
        service,
        adult_engine.url,
        "adult-income",
        load_adult(),
        problem_type="binary",
        label="income",
        features=ADULT_FEATURES,
    )
    for i in range(4):
        before = engine_stats(adult_engine.url)
        lime = service.explanations.explain(s.sub.id, scoring_id=f"tx-{i}")
        mid = engine_stats(adult_engine.url)
        contrastive = service.explanations.explain(s.sub.id, scoring_id=f"tx-{i}", method="contrastive")
        assert calls(before, mid, "calls:adult-income") == 1
        assert calls(mid, engine_stats(adult_engine.url), "calls:adult-income") <= 10
        assert lime.status == contrastive.status == FINISHED
        assert contrastive.result and contrastive.result["pertinent_positive"]["complete"]
    assert lime.result
    conditions = {c["feature"]: c["condition"] for c in lime.result["contributions"]}
    assert not conditions or all(isinstance(v, str) for v in conditions.values())
    assert np.isfinite(lime.result["r2"])
