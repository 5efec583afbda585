"""HTTP-driven preview / up / refresh / destroy of the project\x27s stacks (Pulumi Automation API)."""
