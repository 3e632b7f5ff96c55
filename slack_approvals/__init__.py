"""slack-approvals: Slack-button approval gates for Prefect flows, decided atomically in Redis.

The repository keeps one folder per layer at its top (`state/`, `bot/`, `flows/`, `approvals/`,
`sandbox/`); they install as subpackages of this one namespace, so a project with its own
`flows` or `state` package can install this one beside it:

    slack_approvals.state       the Redis store (bottom layer)
    slack_approvals.bot         the Bolt app; imports state
    slack_approvals.flows       Prefect gates and flows; imports state, never bot
    slack_approvals.approvals   settings, wiring and the `approvals` command line
    slack_approvals.sandbox     a local Slack stand-in; imports nothing of ours
"""
