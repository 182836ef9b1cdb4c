"""Where conversations arrive and wait: channels (business numbers) feed queues.

Queues have members (the agents who serve them) and business hours; `assignment/` decides who takes
what waits in them.
"""
