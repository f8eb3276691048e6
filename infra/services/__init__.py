"""The ECS cluster, the Fargate task and service building blocks, and the containers of every role."""
