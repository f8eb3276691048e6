"""Worker autoscaling on Celery queue length: the policies, their math, and a simulator of them."""
