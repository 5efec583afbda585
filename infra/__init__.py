"""The ECS Fargate stack as plain-Python Pulumi components, one concern per module.

Composed top to bottom by __main__.py; settings.py validates the config first; synth.py
evaluates the whole program offline under Pulumi's mocks (mock_cloud.py).
"""
