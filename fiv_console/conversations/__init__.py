"""Conversations and what hangs on them: reading them, their moves, contacts, notes, labels and read marks."""
