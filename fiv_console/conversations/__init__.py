"""Conversations and what hangs on them: who may see them, their lifecycle, contacts, notes, labels, read marks."""
