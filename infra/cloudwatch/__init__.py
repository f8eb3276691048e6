"""CloudWatch metric queries and the one alarm builder, shared by every component that alarms."""
