"""Models of what the real Pulumi engine and AWS do that Pulumi mocks do not show: how the engine
starts the program and the dynamic-provider process, what a pickled provider in the state holds,
the order resources are created and destroyed in, and what AWS checks only at run time."""
