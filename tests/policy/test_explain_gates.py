"""`approvals policy explain` settles the draft the flow's gate will open: its facts (from the
business parameters) and the routing its gate names itself (the destructive quorum)."""

from __future__ import annotations

from pathlib import Path

from slack_approvals.approvals.explaining import explain, flow_draft
from slack_approvals.policy.document import parse_policy

ISSUE_POLICY = parse_policy((Path(__file__).parent / "issue_policy.yaml").read_text(),
                            "approvals-policy.yaml")


def test_a_deploy_to_production_is_explained_by_the_facts_its_gate_shows() -> None:
    settled = explain(ISSUE_POLICY, flow_draft("deploy-approval", {"environment": "production"}), {})
    assert (settled.rule, settled.approvers) == ("production-changes", ("U0CARL",))
    staging = explain(ISSUE_POLICY, flow_draft("deploy-approval", {"environment": "staging"}), {})
    assert staging.rule is None and staging.approvers == ("U0ANNA",)


def test_the_quorum_a_gate_names_itself_is_explained() -> None:
    settled = explain(ISSUE_POLICY, flow_draft("destructive-operation", {}), {})
    assert settled.quorum == 2
