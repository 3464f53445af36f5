"""ChatOps: one command grammar for Slack, Mattermost and any bot (``POST /api/v1/chat/query``).

``commands`` parses and runs a command against the store and the server's pipeline and answers
an ``Answer`` (facts plus text lines); ``render`` turns that one answer into Block Kit, Mattermost
markdown or JSON, so every channel tells the same facts; ``users`` maps chat users to roles.
"""
