"""The data stores (RDS PostgreSQL, the ElastiCache broker) and the secrets that reach the app."""
