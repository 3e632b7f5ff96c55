"""Action, block and callback ids shared by the block builders and the listeners."""

APPROVE_ACTION = "approval.approve"
REJECT_ACTION = "approval.reject"
REJECT_MODAL = "approval.reject_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
SLASH_COMMAND = "/approvals"
# The buttons' block is `vote:<request id>`, so a reader of posted messages finds the request.
VOTE_BLOCK_PREFIX = "vote:"


def vote_block_id(request_id: str) -> str:
    return f"{VOTE_BLOCK_PREFIX}{request_id}"


def request_id_of_vote_block(block_id: str) -> str | None:
    """The request a `vote:` block belongs to, or None for any other block."""
    return block_id.removeprefix(VOTE_BLOCK_PREFIX) if block_id.startswith(VOTE_BLOCK_PREFIX) else None
