"""Support shared by the tests and the benchmarks: the program under Pulumi mocks, and models of
what the real engine and AWS do that mocks do not show."""
