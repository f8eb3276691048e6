"""The web edge: the Application Load Balancer in front of the gunicorn tasks."""
