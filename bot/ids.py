"""Action, block and callback ids shared by the block builders and the listeners."""

APPROVE_ACTION = "approval.approve"
REJECT_ACTION = "approval.reject"
REJECT_MODAL = "approval.reject_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
SLASH_COMMAND = "/approvals"
