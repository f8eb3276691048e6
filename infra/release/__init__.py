"""The release phase: run the migrate task once per release and report how it ended."""
