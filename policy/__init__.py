"""Approval policy as code: an admin-owned document decides who approves what, never the caller.

    document.py   parse and validate the YAML text (problems as `PATH:LINE: message`)
    matching.py   one condition of a rule (`>= 10000`, `in [a, b]`, `USD`) and how values compare
    routing.py    route(policy, flow=, gate=, requester=, params=, facts=) -> Routing
    builtin.py    the policy in force when no file exists: today's behaviour
    opening.py    Opener: the one path that opens a routed request (create, then post,
                  auto-approve or deny through the Closer); gates, the CLI and auto-approval
    errors.py     PolicyError and its branch of the error tree

Pure except opening.py, which does its I/O only through the store and Closer it is given.
"""
