"""HTTP-driven preview / up / refresh / destroy of the project's stacks via the Automation API."""
