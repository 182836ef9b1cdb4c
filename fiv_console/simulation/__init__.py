"""Stand-ins for the outside world: Meta's Cloud API simulator, customer traffic, the demo tenant.

Tests, benchmarks, `fiv-console demo` and `fiv-console simulator` use them; the server imports none of
it unless it runs the demo or the simulator.
"""
