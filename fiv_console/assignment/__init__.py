"""Who takes what waits: agents' presence, a pure policy that chooses, claims that apply its choice under
row locks, the loop that runs them, and the moves the console makes by itself (absence, unanswered, SLA)."""
