"""Who signs in: tenants and their workspaces, people and their roles, passwords, API tokens.

Also what guards signing in (failed attempts counted per account and address) and the audit log of
sensitive changes. `sign_in` checks credentials and whether a session or token still stands.
"""
