"""The app image: its ECR repository, and the build from the configured context pushed there."""
