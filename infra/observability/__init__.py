"""What the stack watches and whom it tells: the dashboard, the alarms and the deployment events."""
