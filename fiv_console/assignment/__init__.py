"""Queue assignment: a pure policy that chooses, and claims that apply its choice under row locks."""
