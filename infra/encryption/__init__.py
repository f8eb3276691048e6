"""The stack's customer-managed KMS key, when it has one."""
