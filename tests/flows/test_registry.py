"""Parameters from `key=value` strings: coerced by the models, refused with their message."""

from __future__ import annotations

from decimal import Decimal

import pytest

from slack_approvals.flows.departments import DepartmentReviewParams
from slack_approvals.flows.errors import BadParameters, UnknownFlow
from slack_approvals.flows.examples import PaymentParams
from slack_approvals.flows.registry import REGISTRY, descriptions, get_flow, parse_pairs, parse_params
from slack_approvals.flows.services import FlowConfig, services_installed

from .support import FRANK, MAYA


def test_names_are_the_prefect_flow_names_and_each_is_described() -> None:
    assert sorted(REGISTRY) == sorted(["etl-pipeline", "department-review", "simple-approval",
                                      "payment-approval", "multi-step-approval", "deploy-approval",
                                      "destructive-operation"])
    for name, entry in REGISTRY.items():
        assert entry.flow.name == name
        assert entry.flow.isasync
        assert 10 < len(descriptions()[name]) <= 80 and "\n" not in descriptions()[name]


def test_defaults_come_from_the_installed_config() -> None:
    config = FlowConfig(channel="C05DEPLOYS", approvers=(MAYA, FRANK), requester="U06REQ")
    with services_installed(None, config):
        for name in REGISTRY:
            params = parse_params(name, {})[1]
            assert getattr(params, "requester", "U06REQ") == "U06REQ", name
        review = parse_params("department-review", {})[1]
        assert isinstance(review, DepartmentReviewParams)
        assert [d.name for d in review.departments] == ["finance", "engineering", "sales"]


def test_strings_are_coerced_and_lists_split_on_commas() -> None:
    _, params = parse_params("payment-approval", parse_pairs(["amount=12500.50", "currency=EUR"]))
    assert isinstance(params, PaymentParams)
    assert params.amount == Decimal("12500.50") and params.currency == "EUR"
    _, review = parse_params("department-review", {"departments": "finance,people ops"})
    assert isinstance(review, DepartmentReviewParams)
    assert [d.slug for d in review.departments] == ["finance", "people-ops"]


@pytest.mark.parametrize(("flow", "values", "message"), [
    ("payment-approval", {"amount": "lots"}, "amount: Input should be a valid decimal (got 'lots')"),
    ("payment-approval", {"auto_approve_below": "1000000", "quorum_above": "1000000"},
     "`auto_approve_below`, `quorum_above` cannot be set: who approves, how many, where and for "
     "how long is decided by the approval policy (`approvals policy explain payment-approval`). "
     "Parameters you can set: amount, currency, payee, reference."),
    ("etl-pipeline", {"problem_threshold": "1"}, "`problem_threshold` cannot be set"),
    ("multi-step-approval", {"manager_approvers": "U06REQ", "finance_approvers": "U06REQ"},
     "`finance_approvers`, `manager_approvers` cannot be set"),
    ("payment-approval", {"amount": "50000", "quorum": "1"}, "`quorum` cannot be set"),
    ("simple-approval", {"channel": "C09ELSEWHERE"}, "`channel` cannot be set"),
    ("simple-approval", {"requester": "U09OTHER"}, "`requester` cannot be set"),
    ("deploy-approval", {"colour": "red"},
     "`colour` cannot be set: no such parameter. Parameters you can set: service, environment, "
     "version, notes."),
    ("etl-pipeline", {"rows": "ten"},
     "rows: Input should be a valid integer, unable to parse string as an integer (got 'ten')"),
    ("etl-pipeline", {"database": "../../etc/passwd"},
     "database: must look like 'etl.sqlite3' (got '../../etc/passwd')"),
    ("simple-approval", {"approvers": "maya"}, "`approvers` cannot be set"),
    ("simple-approval", {"timeout_seconds": "0"}, "`timeout_seconds` cannot be set"),
    ("deploy-approval", {"environment": "prod"},
     "environment: Input should be 'development', 'staging' or 'production' (got 'prod')"),
    ("destructive-operation", {"approvers": "U01MAYA"}, "`approvers` cannot be set"),
    ("destructive-operation", {"quorum": "1"}, "`quorum` cannot be set"),
    ("department-review", {"departments": "finance,Finance"},
     "departments: each department may be named once"),
    ("department-review", {"departments": ""}, "departments: Value should have at least 1 item"),
    ("multi-step-approval", {"colour": "blue"}, "`colour` cannot be set: no such parameter"),
])
def test_bad_parameters_are_refused_with_the_model_message(flow: str, values: dict[str, str],
                                                           message: str) -> None:
    with pytest.raises(BadParameters) as refused:
        parse_params(flow, values)
    assert str(refused.value).startswith(f"{flow}: ")
    assert message in str(refused.value)


@pytest.mark.parametrize(("flow", "values", "message"), [
    ("deploy-approval", {"version": "latest"}, "version: must look like '1.0.0' (got 'latest')"),
    ("simple-approval", {"requester": "maya"},
     "requester: must be a Slack user id like U012AB3CD (got 'maya')"),
    ("payment-approval", {"currency": "euro"}, "currency: must look like 'USD' (got 'euro')"),
])
def test_a_value_of_the_wrong_form_is_described_not_shown_as_a_regex(
        flow: str, values: dict[str, str], message: str) -> None:
    with pytest.raises(BadParameters) as refused:
        get_flow(flow).parse(values)
    assert message in str(refused.value)
    assert "pattern" not in str(refused.value) and "\\d" not in str(refused.value)


def test_unknown_flows_are_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownFlow, match="there is no flow 'etl'; flows: department-review, "):
        get_flow("etl")


@pytest.mark.parametrize("pairs", [["amount"], ["=5"], ["amount=1", "amount=2"]])
def test_malformed_pairs_are_refused(pairs: list[str]) -> None:
    with pytest.raises(BadParameters):
        parse_pairs(pairs)
