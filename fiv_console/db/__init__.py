"""PostgreSQL: connection URLs, the server role, the pool with `tenant_tx`, migrations, embedded server."""
