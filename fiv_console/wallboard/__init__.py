"""The supervisors' live wallboard: its figures per queue and agent, read from maintained counters."""
