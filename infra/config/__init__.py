"""The stack configuration: `stack.py` composes the parts each concern reads (`infra/<concern>/config.py`)."""
