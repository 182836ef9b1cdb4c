"""The bus between instances: a doorbell that says "these events were committed" (the log stays the truth)."""
