"""Parameters from `key=value` strings: coerced by the models, refused with their message."""

from __future__ import annotations

from decimal import Decimal

import pytest

from slack_approvals.flows.departments import DepartmentReviewParams
from slack_approvals.flows.errors import BadParameters, UnknownFlow
from slack_approvals.flows.examples import PaymentParams, PaymentRoute
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
            assert getattr(params, "channel", "C05DEPLOYS") == "C05DEPLOYS", name
            assert getattr(params, "requester", "U06REQ") == "U06REQ", name
        assert parse_params("simple-approval", {})[1].approvers == [MAYA, FRANK]  # type: ignore[attr-defined]
        review = parse_params("department-review", {})[1]
        assert isinstance(review, DepartmentReviewParams)
        assert [(d.name, d.channel, d.approvers) for d in review.departments] == [
            (n, "C05DEPLOYS", [MAYA, FRANK]) for n in ("finance", "engineering", "sales")]


def test_strings_are_coerced_and_lists_split_on_commas() -> None:
    _, params = parse_params("payment-approval", parse_pairs(
        ["amount=12500.50", "approvers=U01MAYA, U02FRANK", "quorum_above=10000", "currency=EUR"]))
    assert isinstance(params, PaymentParams)
    assert params.amount == Decimal("12500.50") and params.approvers == [MAYA, FRANK]
    assert params.route is PaymentRoute.QUORUM
    _, review = parse_params("department-review", {"departments": "finance,people ops"})
    assert isinstance(review, DepartmentReviewParams)
    assert [d.slug for d in review.departments] == ["finance", "people-ops"]


@pytest.mark.parametrize(("flow", "values", "message"), [
    ("payment-approval", {"amount": "lots"}, "amount: Input should be a valid decimal (got 'lots')"),
    ("payment-approval", {"auto_approve_below": "-5"},
     "auto_approve_below: Input should be greater than or equal to 0 (got '-5')"),
    ("payment-approval", {"auto_approve_below": "500", "quorum_above": "100"},
     "quorum_above: must not be below auto_approve_below"),
    ("etl-pipeline", {"problem_threshold": "-0.1"},
     "problem_threshold: Input should be greater than or equal to 0 (got '-0.1')"),
    ("etl-pipeline", {"rows": "ten"},
     "rows: Input should be a valid integer, unable to parse string as an integer (got 'ten')"),
    ("etl-pipeline", {"database": "../../etc/passwd"},
     "database: must look like 'etl.sqlite3' (got '../../etc/passwd')"),
    ("simple-approval", {"approvers": "maya"},
     "approvers.0: must be a Slack user id like U012AB3CD (got 'maya')"),
    ("simple-approval", {"quorum": "3", "approvers": "U01MAYA,U02FRANK"},
     "quorum: 3 approvals needed but only 2 approvers named"),
    ("simple-approval", {"timeout_seconds": "0"}, "timeout_seconds: Input should be greater than 0"),
    ("deploy-approval", {"environment": "prod"},
     "environment: Input should be 'development', 'staging' or 'production' (got 'prod')"),
    ("destructive-operation", {"approvers": "U01MAYA"},
     "quorum: 2 approvals needed but only 1 approvers named"),
    ("destructive-operation", {"quorum": "1"}, "quorum: Input should be greater than or equal to 2"),
    ("department-review", {"departments": "finance,Finance"},
     "departments: each department may be named once"),
    ("department-review", {"departments": ""}, "departments: Value should have at least 1 item"),
    ("multi-step-approval", {"colour": "blue"}, "colour: Extra inputs are not permitted"),
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
