"""`python -m slack_approvals ...` is the `approvals` command, for when the script is not on PATH."""

from slack_approvals.approvals.cli import main

main()
