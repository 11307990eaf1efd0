"""``subscription.explain`` from the Python SDK against a real server and engine."""

from __future__ import annotations

import pytest

from scrutiny.demo import credit
from scrutiny.sdk import Client, ScrutinyAPIError
from tests.support.explain import Subscribed, python_row


@pytest.fixture
def backend() -> str:
    """The SDK is a client: one store is enough."""
    return "sqlite"


@pytest.fixture
def sub(api, credit_sub: Subscribed):  # type: ignore[no-untyped-def]
    srv, key = api
    with Client(srv.url, key) as c:
        yield c.subscriptions.get(credit_sub.sub.id)


def test_explain_a_logged_transaction(sub, credit_sub: Subscribed) -> None:  # type: ignore[no-untyped-def]
    before = credit_sub.stats()
    expl = sub.explain("tx-1")
    assert credit_sub.stats()["calls:credit-risk"] - before["calls:credit-risk"] == 1
    assert expl["status"] == "finished" and expl["scoring_id"] == "tx-1-1" and expl["scoring_calls"] == 1
    assert expl["contributions"] and expl["prediction"] in credit.LABELS
    contrastive = sub.explain("tx-1-1", method="contrastive", options={"max_calls": 6})
    assert contrastive["pertinent_negative"]["exists"] in (True, False) and contrastive["scoring_calls"] <= 6
    listed = sub.explanations("tx-1")
    assert [e["id"] for e in listed] == [contrastive["id"], expl["id"]]
    assert sub.explanations(method="lime")[0]["id"] == expl["id"]


def test_explain_inline_and_background(sub, credit_sub: Subscribed) -> None:  # type: ignore[no-untyped-def]
    row = dict(zip(credit.FEATURES, python_row(credit_sub.frame, 3, credit.FEATURES), strict=True))
    expl = sub.explain(record=row)
    assert expl["status"] == "finished" and expl["record"]["values"] == [list(row.values())]
    started = sub.explain("tx-2", wait=False)
    assert started["status"] in ("in_progress", "finished")


def test_errors_raise(sub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScrutinyAPIError) as err:
        sub.explain("nope")
    assert err.value.status == 404 and "no transaction" in err.value.message
